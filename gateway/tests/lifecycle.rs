//! Connection limit, SIGTERM drain and SIGHUP reload, on the real binary.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::common::{metric, read_response, send, write_file, Daemon};

const GET_HEALTH: &str = "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// An open keep-alive connection that has been served once, so the gateway holds it.
fn held_connection(daemon: &Daemon) -> TcpStream {
    let mut stream = daemon.connect();
    assert_eq!(send(&mut stream, GET_HEALTH).status, 200);
    stream
}

#[test]
fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let daemon = Daemon::start("[gateway]\nmax_connections = 4\n");
    let mut held: Vec<TcpStream> = (0..4).map(|_| held_connection(&daemon)).collect();

    // The fifth connection completes the TCP handshake (kernel backlog) but is not served.
    let mut fifth = daemon.connect();
    fifth.write_all(GET_HEALTH.as_bytes()).unwrap();
    fifth
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut probe = [0u8; 1];
    let early = std::io::Read::read(&mut fifth, &mut probe);
    assert!(
        early.is_err(),
        "a fifth connection was served while four were held: {early:?}"
    );

    // Freeing one slot lets it through.
    drop(held.pop());
    fifth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let response = read_response(&mut fifth);
    assert_eq!(response.status, 200);
    drop(held);
}

#[test]
fn twice_max_connections_concurrent_clients_are_all_served_without_errors() {
    let daemon = Daemon::start("[gateway]\nmax_connections = 8\n");
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let addr = daemon.addr;
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                for _ in 0..25 {
                    let mut stream = TcpStream::connect(addr).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(20)))
                        .unwrap();
                    statuses.push(send(&mut stream, GET_HEALTH).status);
                }
                statuses
            })
        })
        .collect();
    let statuses: Vec<u16> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(statuses.len(), 400);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    let text = daemon.get("/metrics").body;
    let ok = r#"mcp_edge_http_requests_total{route="/health",method="GET",status="200"}"#;
    assert_eq!(metric(&text, ok), Some(400.0));
    assert_eq!(daemon.problems_logged(), Vec::<String>::new());
}

#[test]
fn sigterm_drains_an_in_flight_request_then_exits_zero() {
    let mut daemon = Daemon::start("[gateway]\nrequest_timeout_ms = 10000\n");
    // A request whose body is still arriving when SIGTERM comes.
    let mut slow = daemon.connect();
    slow.write_all(b"POST /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\n\r\nabc")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));

    daemon.signal(Signal::SIGTERM);
    daemon.wait_for_log("stopped accepting", Duration::from_secs(5));
    // The listener is closed: new clients are refused at once.
    assert!(
        TcpStream::connect(daemon.addr).is_err(),
        "a new connection was accepted while draining"
    );
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "exited before the in-flight request finished"
    );

    std::thread::sleep(Duration::from_millis(500));
    slow.write_all(b"def").unwrap();
    let response = read_response(&mut slow);
    assert_eq!(
        response.status, 405,
        "the in-flight request got its real answer"
    );

    let status = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    let logs = daemon.logs().join("\n");
    assert!(logs.contains("all connections drained"), "{logs}");
}

#[test]
fn drain_stops_at_the_deadline() {
    let mut daemon = Daemon::start("[gateway]\nrequest_timeout_ms = 500\n");
    let _idle_forever = held_connection(&daemon);
    let mut stuck = daemon.connect();
    stuck
        .write_all(b"POST /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\n\r\nabc")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn sighup_applies_live_settings_and_reports_the_rest() {
    let mut daemon = Daemon::start("[gateway]\nmax_body_bytes = 1024\n");
    let post = |daemon: &Daemon| {
        let body = "z".repeat(3000);
        let raw = format!(
            "POST /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3000\r\n\r\n{body}"
        );
        send(&mut daemon.connect(), &raw).status
    };
    assert_eq!(post(&daemon), 413);

    let new = "[gateway]\nbind_address = \"127.0.0.1:1\"\nmax_body_bytes = 4096\n[power]\ncpu_throttle_percent = 50\n";
    write_file(&daemon.config_path, new);
    daemon.signal(Signal::SIGHUP);
    let line = daemon.wait_for_log("configuration reloaded", Duration::from_secs(5));
    assert!(
        line.contains(r#"applied=["gateway.max_body_bytes"]"#),
        "{line}"
    );
    assert!(
        line.contains(r#"needs_restart=["gateway.bind_address", "power"]"#),
        "{line}"
    );
    assert_eq!(post(&daemon), 405, "the new body limit is in force");

    // A broken file is refused and the running settings stay.
    write_file(&daemon.config_path, "[gateway]\nmax_body_bytes = \"big\"\n");
    daemon.signal(Signal::SIGHUP);
    let line = daemon.wait_for_log("reload refused", Duration::from_secs(5));
    assert!(line.contains("ERROR"), "{line}");
    daemon.wait_for_log(
        "mcp-edge.toml:2:18: gateway.max_body_bytes",
        Duration::from_secs(5),
    );
    assert_eq!(post(&daemon), 405);
    let text = daemon.get("/metrics").body;
    assert_eq!(
        metric(&text, r#"mcp_edge_config_reloads_total{result="applied"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, r#"mcp_edge_config_reloads_total{result="rejected"}"#),
        Some(1.0)
    );
}
