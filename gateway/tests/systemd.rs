//! systemd integration seen from outside: notifications on a real `NOTIFY_SOCKET` datagram
//! socket, and a listening socket inherited the way systemd passes it (fd 3, `LISTEN_*`).

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::common;
use crate::common::{config_file, Daemon, BIN};

/// Collects notification datagrams until `done` holds or the timeout passes.
fn collect(
    socket: &UnixDatagram,
    timeout: Duration,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&messages) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; received so far: {messages:#?}");
        socket.set_read_timeout(Some(left)).unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    messages
}

fn count(messages: &[String], field: &str) -> usize {
    messages
        .iter()
        .filter(|m| m.lines().any(|l| l == field))
        .count()
}

#[test]
fn ready_status_watchdog_reloading_and_stopping_reach_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut daemon = Daemon::start_with("", |command| {
        command
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "400000");
    });

    // READY=1 arrives with a status line naming the bound address, and only after binding:
    // the daemon logged "listening" before we could read its address at all.
    let messages = collect(&socket, Duration::from_secs(10), |m| {
        count(m, "READY=1") >= 1
    });
    let ready = messages
        .iter()
        .find(|m| m.lines().any(|l| l == "READY=1"))
        .unwrap();
    let status = format!("STATUS=serving on {}", daemon.addr);
    assert!(ready.lines().any(|l| l == status), "{ready:?}");

    // WATCHDOG=1 every half WATCHDOG_USEC (200 ms): several within 1.5 s.
    let started = Instant::now();
    let messages = collect(&socket, Duration::from_secs(5), |m| {
        count(m, "WATCHDOG=1") >= 4
    });
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "pings too slow: {:?}",
        started.elapsed()
    );
    assert_eq!(count(&messages, "READY=1"), 0);

    daemon.signal(Signal::SIGHUP);
    let messages = collect(&socket, Duration::from_secs(5), |m| {
        count(m, "READY=1") >= 1
    });
    let reloading = messages
        .iter()
        .find(|m| m.lines().any(|l| l == "RELOADING=1"))
        .expect("RELOADING=1");
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    let ready = messages
        .iter()
        .find(|m| m.lines().any(|l| l == "READY=1"))
        .unwrap();
    assert!(ready.contains("STATUS=reloaded"), "{ready:?}");

    daemon.signal(Signal::SIGTERM);
    let messages = collect(&socket, Duration::from_secs(5), |m| {
        count(m, "STOPPING=1") >= 1
    });
    assert!(
        messages.iter().any(|m| m.contains("STATUS=draining")),
        "{messages:#?}"
    );
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

/// Runs the gateway the way systemd does for a `.socket` unit: the listening socket as fd 3,
/// `LISTEN_FDS=1`, `LISTEN_FDNAMES`, and `LISTEN_PID` set to the gateway's own pid (the shell
/// learns its pid with `$$` and then `exec`s the gateway, which keeps it).
fn socket_activated(fd_source: &impl AsRawFd, config: &str) -> (tempfile::TempDir, Command) {
    let (dir, path) = config_file(config);
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", r#"LISTEN_PID=$$ exec "$0" serve --config "$1""#, BIN])
        .arg(&path)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "http");
    let raw = fd_source.as_raw_fd();
    // SAFETY: dup2 and fcntl are async-signal-safe, and the closure touches nothing but two fd numbers.
    // Handing a descriptor to a child at a fixed number is what socket activation is, and std
    // offers no safe way to do it.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || {
            // dup2 onto itself keeps FD_CLOEXEC, so a socket that already is fd 3 needs the
            // flag cleared instead.
            let result = if raw == 3 {
                nix::libc::fcntl(3, nix::libc::F_SETFD, 0)
            } else {
                nix::libc::dup2(raw, 3)
            };
            if result == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    (dir, command)
}

#[test]
fn serves_on_the_socket_systemd_passes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // bind_address points at a port the gateway could not bind (1 needs privileges): the only
    // way to serve is the inherited socket.
    let (dir, command) = socket_activated(&listener, "[gateway]\nbind_address = \"127.0.0.1:1\"\n");
    let path = dir.path().join("mcp-edge.toml");
    let mut daemon = Daemon::spawn(command, dir, path);
    drop(listener);
    assert_eq!(daemon.addr.port(), port);
    daemon.wait_for_log(
        "using the listening socket passed by systemd",
        Duration::from_secs(5),
    );
    let response = daemon.get("/health");
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["status"], "ready");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_socket_activated_gateway_exits_when_idle_and_the_socket_keeps_listening() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (dir, command) = socket_activated(
        &listener,
        &format!(
            "{}[power]\nsleep_on_idle_ms = 500\nexit_on_idle = true\n",
            common::fixture_device_section()
        ),
    );
    let path = dir.path().join("mcp-edge.toml");
    let mut daemon = Daemon::spawn(command, dir, path);
    assert_eq!(daemon.get("/v1/models").status, 200);
    let started = Instant::now();
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let idle = started.elapsed();
    assert!(idle >= Duration::from_millis(500), "exited after {idle:?}");
    assert!(
        daemon
            .logs()
            .iter()
            .any(|l| l.contains("idle for power.sleep_on_idle_ms; exiting")),
        "{:#?}",
        daemon.logs()
    );
    // systemd still holds the socket: a client connects and waits for the next start.
    assert!(std::net::TcpStream::connect(addr).is_ok());
}

#[test]
fn a_passed_descriptor_that_is_not_a_listening_socket_is_refused() {
    let file = tempfile::tempfile().unwrap();
    let (_dir, mut command) = socket_activated(&file, "");
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("file descriptor 3 from systemd is not a listening TCP socket"),
        "{stderr}"
    );
}
