//! The HTTP surface over real loopback sockets: endpoints, limits, errors, HTTP/2.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::{metric, read_response, send, Daemon};

#[test]
fn health_reports_ready_subsystems_as_json() {
    let daemon = Daemon::start("");
    let response = daemon.get("/health");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let json = response.json();
    assert_eq!(json["status"], "ready");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["subsystems"]["http"]["ready"], true);
    let detail = json["subsystems"]["http"]["detail"].as_str().unwrap();
    assert!(detail.contains(&daemon.addr.to_string()), "{detail}");
}

#[test]
fn metrics_count_real_requests() {
    let daemon = Daemon::start("");
    for _ in 0..3 {
        assert_eq!(daemon.get("/health").status, 200);
    }
    assert_eq!(daemon.get("/nope").status, 404);
    let response = daemon.get("/metrics");
    assert_eq!(response.status, 200);
    assert!(response
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = &response.body;
    let health_ok = r#"mcp_edge_http_requests_total{route="/health",method="GET",status="200"}"#;
    assert_eq!(metric(text, health_ok), Some(3.0), "{text}");
    let other = r#"mcp_edge_http_requests_total{route="other",method="GET",status="404"}"#;
    assert_eq!(metric(text, other), Some(1.0), "{text}");
    let count = r#"mcp_edge_http_request_duration_seconds_count{route="/health"}"#;
    assert_eq!(metric(text, count), Some(3.0), "{text}");
    // Five connections so far, this one included.
    assert_eq!(
        metric(text, "mcp_edge_http_connections_total"),
        Some(5.0),
        "{text}"
    );
    // This connection is open; the four earlier ones may not have been reaped yet.
    let open = metric(text, "mcp_edge_http_connections_open").unwrap();
    assert!((1.0..=5.0).contains(&open), "{text}");
    let build = format!(
        r#"mcp_edge_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(metric(text, &build), Some(1.0), "{text}");
    assert!(text.ends_with("# EOF\n"));

    // A second scrape sees the first one counted.
    let again = daemon.get("/metrics").body;
    let scrapes = r#"mcp_edge_http_requests_total{route="/metrics",method="GET",status="200"}"#;
    assert_eq!(metric(&again, scrapes), Some(1.0), "{again}");
}

#[test]
fn metrics_can_be_turned_off() {
    let daemon = Daemon::start("[telemetry]\nenabled = false\n");
    let response = daemon.get("/metrics");
    assert_eq!(response.status, 404);
    assert_eq!(response.error_code(), "not_found");
}

#[test]
fn unknown_routes_and_methods_get_json_errors() {
    let daemon = Daemon::start("");
    let response = daemon.get("/does-not-exist");
    assert_eq!(response.status, 404);
    assert_eq!(response.error_code(), "not_found");

    let mut stream = daemon.connect();
    let response = send(
        &mut stream,
        "DELETE /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(response.status, 405);
    assert_eq!(response.error_code(), "method_not_allowed");
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
    // The connection survives the error.
    let response = send(
        &mut stream,
        "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(response.status, 200);
}

#[test]
fn oversized_bodies_get_413_and_the_gateway_keeps_serving() {
    let daemon = Daemon::start("[gateway]\nmax_body_bytes = 2048\n");

    // Declared too large: refused before the body is sent.
    let mut stream = daemon.connect();
    let head = "POST /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4096\r\n\r\n";
    let response = send(&mut stream, head);
    assert_eq!(response.status, 413);
    assert_eq!(response.error_code(), "payload_too_large");

    // Chunked, with no length up front: refused once the limit is crossed.
    let mut stream = daemon.connect();
    let chunk = "x".repeat(1500);
    let raw = format!(
        "POST /health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n{len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    let response = send(&mut stream, &raw);
    assert_eq!(response.status, 413);
    assert_eq!(response.error_code(), "payload_too_large");

    // Within the limit the body is accepted (and the method then judged).
    let mut stream = daemon.connect();
    let body = "y".repeat(2048);
    let raw =
        format!("POST /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2048\r\n\r\n{body}");
    assert_eq!(send(&mut stream, &raw).status, 405);

    assert_eq!(daemon.get("/health").status, 200);
}

#[test]
fn oversized_headers_get_431() {
    let daemon = Daemon::start("");
    let mut stream = daemon.connect();
    let big = "a".repeat(80 * 1024);
    let raw = format!("GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n");
    let response = send(&mut stream, &raw);
    assert_eq!(response.status, 431);
    assert_eq!(daemon.get("/health").status, 200);
}

#[test]
fn foreign_host_and_origin_are_refused() {
    let daemon = Daemon::start("[gateway]\nallowed_hosts = [\"localhost\", \"edge-1.lan\"]\n");
    let get = |host: &str, extra: &str| {
        send(
            &mut daemon.connect(),
            &format!("GET /health HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n"),
        )
    };
    assert_eq!(get("edge-1.lan:8080", "").status, 200);
    let response = get("attacker.example", "");
    assert_eq!(response.status, 403);
    assert_eq!(response.error_code(), "host_not_allowed");
    let response = get("localhost", "Origin: http://attacker.example\r\n");
    assert_eq!(response.status, 403);
    assert_eq!(response.error_code(), "origin_not_allowed");
    assert_eq!(
        get("localhost", "Origin: http://edge-1.lan:3000\r\n").status,
        200
    );
}

#[test]
fn a_body_slower_than_the_request_timeout_gets_408() {
    let daemon = Daemon::start("[gateway]\nrequest_timeout_ms = 300\n");
    let mut stream = daemon.connect();
    stream
        .write_all(b"POST /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let started = Instant::now();
    let response = read_response(&mut stream);
    let waited = started.elapsed();
    assert_eq!(response.status, 408);
    assert_eq!(response.error_code(), "request_timeout");
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert_eq!(daemon.get("/health").status, 200);
}

#[test]
fn http2_with_prior_knowledge_is_served() {
    let daemon = Daemon::start("");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use http_body_util::{BodyExt, Empty};
        let stream = tokio::net::TcpStream::connect(daemon.addr).await.unwrap();
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = http::Request::get(format!("http://localhost:{}/health", daemon.addr.port()))
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["status"], "ready");
    });
}
