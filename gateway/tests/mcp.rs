//! MCP through the gateway with real clients and servers: the official Python SDK as client,
//! the reference everything server and a second MCP server as federated upstreams, the Rust SDK
//! (rmcp) as client where the test must act between calls, and raw HTTP for malformed input.

use std::process::Command;
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

use crate::common;
use crate::common::{fixture_device_section, test_tools, Daemon, BIN};

fn python_client(args: &[&str]) -> Value {
    let tools = test_tools();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/sdk_client.py");
    let output = Command::new(&tools.python)
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "sdk_client.py failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

fn assert_device_answers(seen: &Value) {
    // The device's tools come first; over HTTP the offline queue's tools follow them.
    let tools = seen["tools"].as_array().unwrap();
    assert_eq!(
        tools[..3],
        [
            json!("device_info"),
            json!("device_sensors"),
            json!("network_links")
        ],
        "{seen}"
    );
    assert_eq!(
        seen["device_info"]["model"],
        "Raspberry Pi 4 Model B Rev 1.4"
    );
    assert_eq!(seen["device_info"]["hostname"], "edge-pi-07");
    assert_eq!(seen["device_info_is_error"], false);
    assert_eq!(seen["thermal"]["thermal_zones"][0]["celsius"], 48.312);
    assert!(
        seen["thermal"].get("hwmon").is_none(),
        "source=thermal returns thermal zones only"
    );
    assert_eq!(seen["bad_arguments_is_error"], true);
    assert!(seen["bad_arguments_text"]
        .as_str()
        .unwrap()
        .contains("source must be one of"));
    assert_eq!(seen["resource_mime"], "application/json");
    assert_eq!(seen["resource"]["kernel"], "6.6.51+rpt-rpi-v8");
    assert_eq!(seen["prompts"], json!(["diagnose_device"]));
    let prompt = seen["prompt_text"].as_str().unwrap();
    assert!(
        prompt.contains("Reported symptom: overheating") && prompt.contains("cpu-thermal"),
        "{prompt}"
    );
}

#[test]
fn python_sdk_uses_device_tools_on_both_protocol_revisions() {
    let daemon = Daemon::start(&fixture_device_section());
    let url = format!("http://{}/mcp", daemon.addr);
    for (mode, expected) in [("legacy", "2025-11-25"), ("2026-07-28", "2026-07-28")] {
        let seen = python_client(&[&url, "--mode", mode]);
        assert_eq!(seen["protocol_version"], expected);
        assert_device_answers(&seen);
    }
}

#[test]
fn python_sdk_uses_device_tools_over_stdio() {
    let (_dir, config) = common::config_file(&fixture_device_section());
    let seen = python_client(&["--stdio", BIN, "--config", config.to_str().unwrap()]);
    assert_device_answers(&seen);
}

async fn connect(daemon: &Daemon) -> RunningService<RoleClient, ()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let transport = StreamableHttpClientTransport::from_uri(format!("http://{}/mcp", daemon.addr));
    ().serve(transport).await.unwrap()
}

fn arguments(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().unwrap().clone()
}

/// The everything server's pid among the gateway's children.
fn everything_pid(gateway: u32) -> Option<i32> {
    let tasks = std::fs::read_dir(format!("/proc/{gateway}/task")).ok()?;
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|pid| pid.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("server-everything"))
        })
}

#[test]
fn federates_upstreams_with_prefixes_and_survives_an_upstream_crash() {
    let tools = test_tools();
    let everything = tools
        .node_modules
        .join("@modelcontextprotocol/server-everything/dist/index.js");
    let (_second_dir, second_config) = common::config_file(&fixture_device_section());
    let config = format!(
        "{device}\n[[upstreams]]\nname = \"everything\"\nprefix = \"ev\"\ncommand = \"{node}\"\nargs = [\"{everything}\", \"stdio\"]\n\n\
         [[upstreams]]\nname = \"second\"\nprefix = \"pi\"\ncommand = \"{bin}\"\nargs = [\"stdio\", \"--config\", \"{second}\"]\n",
        device = fixture_device_section(),
        node = tools.node.display(),
        everything = everything.display(),
        bin = BIN,
        second = second_config.display(),
    );
    let mut daemon = Daemon::start(&config);
    daemon.wait_for_log("upstream=everything", Duration::from_secs(30));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = connect(&daemon).await;
        // Both upstreams connect in the background: wait until the catalog holds both.
        let deadline = Instant::now() + Duration::from_secs(30);
        let names = loop {
            let names: Vec<String> = client
                .list_all_tools()
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.name.into())
                .collect();
            if names.iter().any(|n| n == "ev_echo") && names.iter().any(|n| n == "pi_device_info") {
                break names;
            }
            assert!(
                Instant::now() < deadline,
                "upstreams never appeared: {names:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(names.contains(&"device_info".to_owned()), "{names:?}");
        assert!(
            !names.contains(&"echo".to_owned()),
            "prefixed names only: {names:?}"
        );

        let echoed = client
            .call_tool(
                CallToolRequestParams::new("ev_echo")
                    .with_arguments(arguments(json!({"message": "hello edge"}))),
            )
            .await
            .unwrap();
        assert!(
            format!("{:?}", echoed.content).contains("hello edge"),
            "{echoed:?}"
        );
        let info = client
            .call_tool(CallToolRequestParams::new("pi_device_info"))
            .await
            .unwrap();
        assert_eq!(
            info.structured_content.unwrap()["model"],
            "Raspberry Pi 4 Model B Rev 1.4"
        );

        // Resources and prompts route through federation too.
        let resources = client.list_all_resources().await.unwrap();
        assert!(resources.iter().any(|r| r.uri == "device://info"));
        let prompts: Vec<String> = client
            .list_all_prompts()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert!(
            prompts.contains(&"pi_diagnose_device".to_owned()),
            "{prompts:?}"
        );
        let prompt = client
            .get_prompt(rmcp::model::GetPromptRequestParams::new(
                "pi_diagnose_device",
            ))
            .await
            .unwrap();
        assert!(format!("{prompt:?}").contains("edge-pi-07"));

        // Kill the everything server: calls to it fail clearly, the rest keeps working, and
        // the same client session sees it come back.
        let pid = everything_pid(daemon.child.id()).expect("everything server process");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut saw_failure = false;
        loop {
            let call = client
                .call_tool(
                    CallToolRequestParams::new("ev_echo")
                        .with_arguments(arguments(json!({"message": "again"}))),
                )
                .await;
            match call {
                Ok(result) if format!("{:?}", result.content).contains("again") && saw_failure => {
                    break
                }
                Ok(_) => {}
                Err(e) => {
                    let message = e.to_string();
                    assert!(
                        message.contains("upstream \"everything\""),
                        "unclear error: {message}"
                    );
                    saw_failure = true;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the everything server never came back"
            );
            let info = client
                .call_tool(CallToolRequestParams::new("device_info"))
                .await;
            assert!(
                info.is_ok(),
                "built-in tools keep working while an upstream is down"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let new_pid = everything_pid(daemon.child.id()).unwrap();
        assert_ne!(new_pid, pid);
        client.cancel().await.unwrap();
    });
    daemon.wait_for_log(
        "upstream connection closed; reconnecting",
        Duration::from_secs(1),
    );
}

/// Raw JSON-RPC POST to `/mcp`; returns the response and the JSON-RPC message it carried.
fn post(daemon: &Daemon, headers: &str, body: &str) -> (common::Response, Value) {
    let raw = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = daemon.connect();
    std::io::Write::write_all(&mut stream, raw.as_bytes()).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).unwrap();
    let (head, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    // JSON, or SSE `data:` lines (possibly chunked): take the first JSON object in the body.
    let message = payload
        .lines()
        .map(|l| l.strip_prefix("data:").unwrap_or(l).trim())
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
        })
        .unwrap_or(Value::Null);
    (
        common::Response {
            status,
            headers,
            body: payload.to_owned(),
        },
        message,
    )
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

/// A 2025-11-25 session over raw HTTP: its id, and the headers every request in it carries.
fn open_session(daemon: &Daemon) -> (String, String) {
    let (response, _) = post(daemon, "", INITIALIZE);
    assert_eq!(response.status, 200);
    let session = response.header("mcp-session-id").unwrap().to_owned();
    let in_session = format!("Mcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-11-25\r\n");
    post(
        daemon,
        &in_session,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    (session, in_session)
}

#[test]
fn bad_input_gets_the_spec_answer_and_the_gateway_keeps_serving() {
    let daemon = Daemon::start("[gateway]\nmax_body_bytes = 4096\n");
    let (session, in_session) = open_session(&daemon);

    let (_, message) = post(
        &daemon,
        &in_session,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list""#,
    );
    assert_eq!(
        message["error"]["code"], -32700,
        "malformed JSON: {message}"
    );

    let (_, message) = post(
        &daemon,
        &in_session,
        r#"{"jsonrpc":"2.0","id":3,"method":"no/such/method"}"#,
    );
    assert_eq!(
        message["error"]["code"], -32601,
        "unknown method: {message}"
    );

    let (_, message) = post(
        &daemon,
        &in_session,
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":42}}"#,
    );
    assert_eq!(
        message["error"]["code"], -32602,
        "invalid params: {message}"
    );

    let (_, message) = post(
        &daemon,
        &in_session,
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"no_such_tool"}}"#,
    );
    assert_eq!(message["error"]["code"], -32602, "unknown tool: {message}");

    let wrong_version =
        format!("Mcp-Session-Id: {session}\r\nMCP-Protocol-Version: 1999-01-01\r\n");
    let (response, _) = post(
        &daemon,
        &wrong_version,
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/list"}"#,
    );
    assert_eq!(
        response.status, 400,
        "unsupported protocol version: {}",
        response.body
    );

    let big = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{{"pad":"{}"}}}}"#,
        "x".repeat(5000)
    );
    let (response, _) = post(&daemon, &in_session, &big);
    assert_eq!(response.status, 413);

    let (response, _) = post(&daemon, "Origin: http://attacker.example\r\n", INITIALIZE);
    assert_eq!(response.status, 403);

    let unknown = "Mcp-Session-Id: 00000000-0000-0000-0000-000000000000\r\nMCP-Protocol-Version: 2025-11-25\r\n";
    let (response, _) = post(
        &daemon,
        unknown,
        r#"{"jsonrpc":"2.0","id":8,"method":"tools/list"}"#,
    );
    assert_eq!(response.status, 404, "unknown session");

    // Still serving, in the same session.
    let (response, message) = post(
        &daemon,
        &in_session,
        r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#,
    );
    assert_eq!(response.status, 200);
    assert_eq!(
        message["result"]["tools"][0]["name"], "device_info",
        "{message}"
    );
    assert_eq!(daemon.get("/health").status, 200);
}

/// Every progress notification an upstream sends before its answer reaches the client before
/// the gateway's answer, call after call, when the upstream answers at once. (CI once lost one of
/// three: the relay subscribed after the upstream had started sending.)
#[test]
fn progress_from_an_upstream_reaches_the_client_before_the_answer() {
    let mut daemon = Daemon::start(&format!(
        "[[upstreams]]\nname = \"conformance\"\ncommand = \"{}\"\n",
        common::conformance_upstream().display()
    ));
    daemon.wait_for_log("upstream ready", Duration::from_secs(20));
    let (_, in_session) = open_session(&daemon);
    // Eight clients at once, as a busy device would have them.
    std::thread::scope(|scope| {
        for client in 0..8 {
            let (daemon, in_session) = (&daemon, &in_session);
            scope.spawn(move || {
                for id in (client * 100 + 2)..(client * 100 + 12) {
                    progress_arrives_before_the_answer(daemon, in_session, id);
                }
            });
        }
    });
}

fn progress_arrives_before_the_answer(daemon: &Daemon, in_session: &str, id: u32) {
    let call = json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {
            "name": "test_tool_with_progress",
            "arguments": {"pause_ms": 0},
            "_meta": {"progressToken": format!("call-{id}")},
        },
    });
    let (response, _) = post(daemon, in_session, &call.to_string());
    // The SSE events in order (each is one chunk, so no data line is split).
    let messages: Vec<Value> = response
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect();
    let answer = messages.iter().position(|m| m["id"] == id);
    assert!(
        answer.is_some_and(|at| messages[at]["result"].is_object()),
        "call {id}: {messages:?}"
    );
    let progress: Vec<f64> = messages[..answer.unwrap_or_default()]
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| {
            assert_eq!(m["params"]["progressToken"], format!("call-{id}"));
            m["params"]["progress"].as_f64().unwrap_or(-1.0)
        })
        .collect();
    assert_eq!(progress, [0.0, 50.0, 100.0], "call {id}: {messages:?}");
}

/// Records `tools/list_changed` notifications.
#[derive(Clone, Default)]
struct ListWatcher {
    changed: std::sync::Arc<tokio::sync::Notify>,
}

impl rmcp::ClientHandler for ListWatcher {
    async fn on_tool_list_changed(&self, _cx: rmcp::service::NotificationContext<RoleClient>) {
        self.changed.notify_one();
    }
}

#[test]
fn clients_hear_when_an_upstream_joins_the_catalog() {
    let fixture = std::path::Path::new(BIN).with_file_name("conformance-upstream");
    assert!(
        fixture.exists(),
        "build it with `cargo build -p mcp-edge-conformance-upstream` (scripts/test.sh does)"
    );
    // The upstream takes two seconds to start, so the client is connected before it joins.
    let config = format!(
        "[[upstreams]]\nname = \"late\"\nprefix = \"late\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"sleep 2; exec {}\"]\n",
        fixture.display()
    );
    let daemon = Daemon::start(&config);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let watcher = ListWatcher::default();
        let transport =
            StreamableHttpClientTransport::from_uri(format!("http://{}/mcp", daemon.addr));
        let client = watcher.clone().serve(transport).await.unwrap();
        let before = client.list_all_tools().await.unwrap();
        assert!(
            !before.iter().any(|t| t.name.starts_with("late_")),
            "joined too early for this test"
        );
        tokio::time::timeout(Duration::from_secs(20), watcher.changed.notified())
            .await
            .expect("no tools/list_changed after the upstream joined");
        let after = client.list_all_tools().await.unwrap();
        assert!(
            after.iter().any(|t| t.name == "late_test_simple_text"),
            "{after:?}"
        );
        client.cancel().await.unwrap();
    });
}

#[test]
fn a_slow_upstream_call_times_out_with_a_clear_error() {
    let tools = test_tools();
    let everything = tools
        .node_modules
        .join("@modelcontextprotocol/server-everything/dist/index.js");
    let config = format!(
        "[[upstreams]]\nname = \"everything\"\ncommand = \"{}\"\nargs = [\"{}\", \"stdio\"]\ntimeout_ms = 500\n",
        tools.node.display(),
        everything.display()
    );
    let mut daemon = Daemon::start(&config);
    daemon.wait_for_log("upstream ready", Duration::from_secs(30));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = connect(&daemon).await;
        let started = Instant::now();
        let call = CallToolRequestParams::new("trigger-long-running-operation")
            .with_arguments(arguments(json!({"duration": 10, "steps": 5})));
        let error = client.call_tool(call).await.unwrap_err().to_string();
        assert!(error.contains("did not answer within 500 ms"), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // The upstream is still usable afterwards.
        let echoed = client
            .call_tool(
                CallToolRequestParams::new("echo")
                    .with_arguments(arguments(json!({"message": "after"}))),
            )
            .await
            .unwrap();
        assert!(format!("{:?}", echoed.content).contains("after"));
        client.cancel().await.unwrap();
    });
}

#[test]
fn a_client_cancellation_reaches_the_upstream() {
    let fixture = std::path::Path::new(BIN).with_file_name("conformance-upstream");
    assert!(
        fixture.exists(),
        "build it with `cargo build -p mcp-edge-conformance-upstream` (scripts/test.sh does)"
    );
    let mut daemon = Daemon::start(&format!(
        "[[upstreams]]\nname = \"fixture\"\ncommand = \"{}\"\n",
        fixture.display()
    ));
    daemon.wait_for_log("upstream ready", Duration::from_secs(20));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = connect(&daemon).await;
        let call = client.call_tool(CallToolRequestParams::new("test_wait_for_cancel"));
        // Dropping the call's future makes the SDK send notifications/cancelled.
        let outcome = tokio::time::timeout(Duration::from_millis(500), call).await;
        assert!(outcome.is_err(), "the call should still be waiting");
        client.cancel().await.unwrap();
    });
    daemon.wait_for_log(
        "test_wait_for_cancel: cancelled by the client",
        Duration::from_secs(10),
    );
}

/// The front gateway's view of its upstream "back": the `mcp` line of `/health`,
/// `mcp_edge_upstream_up` and `mcp_edge_upstream_disconnects_total`. The health line is read
/// first: the gateway writes it last (after both metrics), so a new state there means the
/// metrics read after it are new too.
fn back_seen_by(front: &Daemon) -> (String, Option<f64>, Option<f64>) {
    let health = common::mcp_health(front);
    let metrics = front.get("/metrics").body;
    (
        health,
        common::metric(&metrics, "mcp_edge_upstream_up{upstream=\"back\"}"),
        common::metric(
            &metrics,
            "mcp_edge_upstream_disconnects_total{upstream=\"back\"}",
        ),
    )
}

/// Waits up to `seconds` for `front`'s view of "back" to satisfy `ok`.
async fn await_back(
    front: &Daemon,
    seconds: u64,
    ok: impl Fn(&(String, Option<f64>, Option<f64>)) -> bool,
) -> (String, Option<f64>, Option<f64>) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let seen = back_seen_by(front);
        if ok(&seen) {
            return seen;
        }
        assert!(Instant::now() < deadline, "still {seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Streamable HTTP upstream (a second gateway, 2026-07-28) that hangs, then dies and is
/// started again on the same port, federated by two fronts: `pinged` (a ping every second) and
/// `unpinged` (pings off). Hung (SIGSTOP: its connections stay open and silent), only the pings
/// notice. Killed, both notice without a call (for `unpinged`, its listen stream broke). Both
/// show it in /health and /metrics, answer calls to it with an error that names it, reconnect
/// when it is back, and their clients' sessions go on.
#[test]
fn a_dead_http_upstream_is_noticed_shown_and_reconnected() {
    let port = common::free_port();
    let back_toml = format!(
        "[gateway]\nbind_address = \"127.0.0.1:{port}\"\n{}",
        fixture_device_section()
    );
    let back = Daemon::start(&back_toml);
    let front = |ping: u32| {
        Daemon::start(&format!(
            "[[upstreams]]\nname = \"back\"\nprefix = \"back\"\nurl = \"http://127.0.0.1:{port}/mcp\"\n\
             ping_interval_seconds = {ping}\n"
        ))
    };
    let (mut pinged, mut unpinged) = (front(1), front(0));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let up = |seen: &(String, Option<f64>, Option<f64>)| {
            seen.0.contains("back ready") && seen.1 == Some(1.0)
        };
        let down = |seen: &(String, Option<f64>, Option<f64>)| {
            seen.0.contains("back reconnecting") && seen.1 == Some(0.0)
        };
        for front in [&pinged, &unpinged] {
            let seen = await_back(front, 20, up).await;
            assert_eq!(seen.2, Some(0.0), "{seen:?}");
        }
        let clients = [connect(&pinged).await, connect(&unpinged).await];
        async fn call(
            client: &RunningService<RoleClient, ()>,
        ) -> Result<rmcp::model::CallToolResult, rmcp::ServiceError> {
            client
                .call_tool(CallToolRequestParams::new("back_device_info"))
                .await
        }
        for client in &clients {
            let info = call(client).await.unwrap();
            assert_eq!(info.structured_content.unwrap()["hostname"], "edge-pi-07");
        }

        back.signal(nix::sys::signal::Signal::SIGSTOP);
        let seen = await_back(&pinged, 20, down).await;
        assert_eq!(seen.2, Some(1.0), "{seen:?}");
        assert!(
            up(&back_seen_by(&unpinged)),
            "{:?}",
            back_seen_by(&unpinged)
        );
        back.signal(nix::sys::signal::Signal::SIGCONT);
        await_back(&pinged, 40, up).await;

        drop(back);
        for (front, lost) in [(&pinged, 2.0), (&unpinged, 1.0)] {
            let seen = await_back(front, 15, down).await;
            assert_eq!(seen.2, Some(lost), "{seen:?}");
        }
        for client in &clients {
            let error = call(client).await.unwrap_err().to_string();
            assert!(
                error.contains("upstream \"back\" is unavailable and being reconnected"),
                "unclear error: {error}"
            );
        }

        let _back = Daemon::start(&back_toml);
        for (front, client) in [&pinged, &unpinged].into_iter().zip(&clients) {
            await_back(front, 40, up).await;
            // The same client session calls it again.
            let info = call(client).await.unwrap();
            assert_eq!(info.structured_content.unwrap()["hostname"], "edge-pi-07");
            assert!(
                client
                    .list_all_tools()
                    .await
                    .unwrap()
                    .iter()
                    .any(|t| t.name == "device_info"),
                "the session survived"
            );
        }
        for client in clients {
            client.cancel().await.unwrap();
        }
    });
    pinged.wait_for_log(
        "upstream did not answer a ping within 5 s",
        Duration::from_secs(1),
    );
    // Killed, the unpinged front gives the connection up as closed or as unanswered, whichever
    // its transport reports first.
    unpinged.wait_for_log("; reconnecting", Duration::from_secs(1));
}

#[test]
fn federates_a_streamable_http_upstream() {
    // A second gateway serves as the HTTP upstream; the front one federates it by URL.
    let back = Daemon::start(&fixture_device_section());
    let mut front = Daemon::start(&format!(
        "[[upstreams]]\nname = \"back\"\nprefix = \"back\"\nurl = \"http://{}/mcp\"\n",
        back.addr
    ));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = connect(&front).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let tools = client.list_all_tools().await.unwrap();
            if tools.iter().any(|t| t.name == "back_device_info") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the HTTP upstream never joined: {tools:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let info = client
            .call_tool(CallToolRequestParams::new("back_device_info"))
            .await
            .unwrap();
        assert_eq!(info.structured_content.unwrap()["hostname"], "edge-pi-07");
        client.cancel().await.unwrap();
    });
    // Both gateways offer device://info: the front's own wins, and the hidden one is reported.
    let line = front.wait_for_log(
        "resource \"device://info\" from back is hidden",
        Duration::from_secs(5),
    );
    assert!(
        line.contains("WARN") && line.contains("only one of them can be read"),
        "{line}"
    );
}
