//! Memory budgets in the running gateway: uploads that stall hold their declared size of the
//! HTTP buffers' budget, so the next body or answer that does not fit is refused with 503
//! `memory_budget_exhausted` while small answers still go out; closing the stalled uploads
//! gives the memory back; `GET /v1/memory` and `/metrics` report it, and only a client with the
//! `metrics` scope may read it.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{hash_token, metric, send, Daemon, Response};

const HTTP_BUDGET: u64 = 8 * 1024;

fn get(daemon: &Daemon, path: &str, token: &str) -> Response {
    send(
        &mut daemon.connect(),
        &format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
             Connection: close\r\n\r\n"
        ),
    )
}

fn memory(daemon: &Daemon) -> Value {
    let response = get(daemon, "/v1/memory", "scraper-token");
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()
}

/// Polls `/v1/memory` until the HTTP buffers hold `bytes`.
fn wait_for_http_buffers(daemon: &Daemon, bytes: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = memory(daemon);
        if stats["http_buffers"]["used_bytes"] == bytes {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "never held {bytes} bytes: {stats}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stalled_uploads_hold_their_budget_until_they_are_gone() {
    let mut daemon = Daemon::start(&format!(
        "[gateway]\nmax_body_bytes = 2048\n[memory]\nhttp_buffers_kb = {}\n\
         [[security.clients]]\nname = \"scraper\"\ntoken_sha256 = \"{}\"\nscopes = [\"metrics\", \"mcp\"]\n\
         [[security.clients]]\nname = \"caller\"\ntoken_sha256 = \"{}\"\nscopes = [\"mcp\"]\n",
        HTTP_BUDGET / 1024,
        hash_token("scraper-token"),
        hash_token("caller-token"),
    ));
    assert_eq!(
        get(&daemon, "/v1/memory", "caller-token").status,
        403,
        "reading the memory needs the metrics scope"
    );
    assert_eq!(get(&daemon, "/v1/memory", "stranger").status, 401);
    let before = memory(&daemon);
    assert_eq!(before["http_buffers"]["limit_bytes"], HTTP_BUDGET);
    assert_eq!(
        before["model"]["used_bytes"], 0,
        "no local model configured"
    );
    assert!(before["process"]["resident_bytes"].as_u64().unwrap() > 1 << 20);

    // Uploads that declared their length and sent a few bytes of it.
    let stall = |length: u64| {
        let mut stream = daemon.connect();
        write!(
            stream,
            "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer scraper-token\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             Content-Length: {length}\r\n\r\n{{\"jsonrpc\""
        )
        .unwrap();
        stream
    };
    let first = stall(2048);
    let others = [stall(2048), stall(2048), stall(1500)];
    wait_for_http_buffers(&daemon, 7644);

    let ping = |size| {
        send(
            &mut daemon.connect(),
            &padded_ping_request("scraper-token", size),
        )
    };
    let refused = ping(2000);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.error_code(), "memory_budget_exhausted");
    let scrape = get(&daemon, "/metrics", "scraper-token");
    assert_eq!(
        scrape.status, 503,
        "an answer that does not fit is refused too"
    );
    assert!(scrape.body.contains("this answer ("), "{}", scrape.body);
    assert_eq!(
        get(&daemon, "/health", "").status,
        200,
        "small answers still go out"
    );

    drop(first);
    wait_for_http_buffers(&daemon, 5596);
    let answered = ping(2000);
    assert_eq!(answered.status, 200, "{}", answered.body);
    drop(others);
    wait_for_http_buffers(&daemon, 0);
    let scrape = get(&daemon, "/metrics", "scraper-token");
    assert_eq!(
        scrape.status, 503,
        "the exposition alone is larger than the budget"
    );

    // A reload applies a larger budget at once.
    let text = std::fs::read_to_string(&daemon.config_path).unwrap();
    std::fs::write(
        &daemon.config_path,
        text.replace("http_buffers_kb = 8", "http_buffers_kb = 64"),
    )
    .unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon.wait_for_log("configuration reloaded", Duration::from_secs(10));
    let scrape = get(&daemon, "/metrics", "scraper-token");
    assert_eq!(scrape.status, 200, "{}", scrape.body);
    assert_eq!(
        metric(
            &scrape.body,
            "mcp_edge_memory_limit_bytes{budget=\"http_buffers\"}"
        ),
        Some(65536.0)
    );
    assert!(
        metric(
            &scrape.body,
            "mcp_edge_memory_refused_total{budget=\"http_buffers\"}"
        ) >= Some(2.0),
        "{}",
        scrape.body
    );
    let after = memory(&daemon);
    assert!(after["http_buffers"]["peak_bytes"].as_u64().unwrap() >= 7644);
    assert!(after["http_buffers"]["refused"].as_u64().unwrap() >= 2);
}

/// A stateless MCP `server/discover` with `token`, its body padded with whitespace to `size` bytes.
fn padded_ping_request(token: &str, size: usize) -> String {
    let mut body = r#"{"jsonrpc":"2.0","id":7,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"memory-test","version":"1"}}}}"#.to_owned();
    body.push_str(&" ".repeat(size.saturating_sub(body.len())));
    format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: server/discover\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}
