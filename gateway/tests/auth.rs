//! Bearer tokens, scopes and rate limits against the real binary: tokens are configured as
//! the SHA-256 that `mcp-gateway hash-token` prints, strangers are refused, each client
//! reaches only its scopes, and a client over its rate gets 429 with Retry-After.

use std::time::Duration;

use crate::common;
use crate::common::{hash_token, mcp_call, send, Daemon, Response};

fn clients(ops_token: &str, app_token: &str) -> String {
    format!(
        "[[security.clients]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\nscopes = [\"*\"]\n\
         [[security.clients]]\nname = \"app\"\ntoken_sha256 = \"{}\"\nscopes = [\"completions\"]\n\
         requests_per_minute = 3\n",
        hash_token(ops_token),
        hash_token(app_token)
    )
}

fn request(daemon: &Daemon, method: &str, path: &str, token: Option<&str>) -> Response {
    let authorization = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    send(
        &mut daemon.connect(),
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{authorization}Content-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
}

#[test]
fn strangers_are_refused_and_clients_reach_only_their_scopes() {
    let hash = hash_token("abc");
    assert_eq!(
        hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "hash-token prints the SHA-256 of its input line"
    );
    let mut daemon = Daemon::start(&clients("ops-token", "app-token"));
    let config = std::fs::read_to_string(&daemon.config_path).unwrap();
    assert!(
        !config.contains("app-token"),
        "the token itself is not in the file"
    );

    assert_eq!(
        request(&daemon, "GET", "/health", None).status,
        200,
        "liveness stays open"
    );
    for path in ["/v1/models", "/metrics", "/v1/queue/status"] {
        let refused = request(&daemon, "GET", path, None);
        assert_eq!(refused.status, 401, "{path}");
        assert_eq!(refused.error_code(), "unauthorized");
        assert!(refused
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer"));
    }
    let mcp = request(&daemon, "POST", "/mcp", None);
    assert_eq!(mcp.status, 401, "MCP needs a token too");
    let wrong = request(&daemon, "GET", "/v1/models", Some("guessed"));
    assert_eq!(
        (wrong.status, wrong.error_code()),
        (401, "invalid_token".into())
    );

    let forbidden = request(&daemon, "POST", "/v1/queue/sync", Some("app-token"));
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    assert_eq!(forbidden.error_code(), "insufficient_scope");
    assert!(forbidden
        .header("www-authenticate")
        .unwrap()
        .contains("scope=\"admin\""));
    assert_eq!(
        request(&daemon, "POST", "/v1/queue/sync", Some("ops-token")).status,
        200
    );
    assert_eq!(
        request(&daemon, "GET", "/metrics", Some("ops-token")).status,
        200
    );

    // app: 3 per minute; the 403 above was refused before it counted.
    for n in 0..3 {
        let ok = request(&daemon, "GET", "/v1/models", Some("app-token"));
        assert_eq!(ok.status, 200, "request {n}: {}", ok.body);
    }
    let limited = request(&daemon, "GET", "/v1/models", Some("app-token"));
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_eq!(limited.error_code(), "rate_limited");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        request(&daemon, "GET", "/v1/models", Some("ops-token")).status,
        200,
        "another client is not slowed down"
    );

    // Rotating a token is a reload, not a restart.
    std::fs::write(
        &daemon.config_path,
        format!(
            "[gateway]\nbind_address = \"{}\"\n{}",
            daemon.addr,
            clients("ops-token", "new-app-token")
        ),
    )
    .unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon.wait_for_log("security.clients", Duration::from_secs(10));
    assert_eq!(
        request(&daemon, "GET", "/v1/models", Some("app-token")).status,
        401
    );
    assert_eq!(
        request(&daemon, "GET", "/v1/models", Some("new-app-token")).status,
        200
    );
}

#[test]
fn a_client_limited_to_some_tools_sees_and_calls_only_those() {
    let daemon = Daemon::start(&format!(
        "{}{}[[security.clients]]\nname = \"sensor-reader\"\ntoken_sha256 = \"{}\"\n\
         scopes = [\"mcp\"]\ntools = [\"device_*\"]\n",
        common::fixture_device_section(),
        clients("ops-token", "app-token"),
        hash_token("reader-token")
    ));
    let names = |token: &str| -> Vec<String> {
        mcp_call(&daemon, token, "tools/list", serde_json::json!({}))["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let limited = names("reader-token");
    assert_eq!(limited, ["device_info", "device_sensors"], "only device_*");
    assert!(
        names("ops-token").contains(&"queue_status".to_owned()),
        "ops sees everything"
    );

    let info = mcp_call(
        &daemon,
        "reader-token",
        "tools/call",
        serde_json::json!({ "name": "device_info", "arguments": {} }),
    );
    assert_eq!(
        info["result"]["structuredContent"]["hostname"], "edge-pi-07",
        "{info}"
    );
    let hidden = mcp_call(
        &daemon,
        "reader-token",
        "tools/call",
        serde_json::json!({ "name": "queue_status", "arguments": {} }),
    );
    assert_eq!(
        hidden["error"]["code"], -32602,
        "answered as an unknown tool: {hidden}"
    );
    let ops = mcp_call(
        &daemon,
        "ops-token",
        "tools/call",
        serde_json::json!({ "name": "queue_status", "arguments": {} }),
    );
    assert!(
        ops["result"]["structuredContent"]["queued"].is_u64(),
        "{ops}"
    );
    // The reader has no other scope.
    assert_eq!(
        request(&daemon, "GET", "/v1/models", Some("reader-token")).status,
        403
    );
}

#[test]
fn a_client_limited_to_some_prompts_and_resources_sees_and_uses_only_those() {
    let daemon = Daemon::start(&format!(
        "{}{}[[security.clients]]\nname = \"display\"\ntoken_sha256 = \"{}\"\n\
         scopes = [\"mcp\"]\nprompts = [\"none_*\"]\nresources = [\"device://*\"]\n",
        common::fixture_device_section(),
        clients("ops-token", "app-token"),
        hash_token("display-token")
    ));
    let listed = |token: &str, method: &str, field: &str, key: &str| -> Vec<String> {
        let answer = mcp_call(&daemon, token, method, serde_json::json!({}));
        answer["result"][field]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"))
            .iter()
            .map(|entry| entry[key].as_str().unwrap().to_owned())
            .collect()
    };
    let resources = |token| listed(token, "resources/list", "resources", "uri");
    let prompts = |token| listed(token, "prompts/list", "prompts", "name");

    let seen = resources("display-token");
    assert!(
        !seen.is_empty() && seen.iter().all(|uri| uri.starts_with("device://")),
        "{seen:?}"
    );
    assert!(resources("ops-token").contains(&"gateway://config".to_owned()));
    assert!(prompts("display-token").is_empty());
    assert!(prompts("ops-token").contains(&"diagnose_device".to_owned()));

    let read = |token: &str, uri: &str| {
        mcp_call(
            &daemon,
            token,
            "resources/read",
            serde_json::json!({ "uri": uri }),
        )
    };
    let info = read("display-token", "device://info");
    assert!(
        info["result"]["contents"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("edge-pi-07"),
        "{info}"
    );
    // Outside its list: answered as for a resource or prompt that does not exist.
    let config = read("display-token", "gateway://config");
    assert_eq!(config["error"]["code"], -32602, "{config}");
    assert!(read("ops-token", "gateway://config")["result"].is_object());
    let prompt = mcp_call(
        &daemon,
        "display-token",
        "prompts/get",
        serde_json::json!({ "name": "diagnose_device", "arguments": { "symptom": "hot" } }),
    );
    assert_eq!(prompt["error"]["code"], -32602, "{prompt}");
    let completion = mcp_call(
        &daemon,
        "display-token",
        "completion/complete",
        serde_json::json!({
            "ref": { "type": "ref/prompt", "name": "diagnose_device" },
            "argument": { "name": "symptom", "value": "ov" }
        }),
    );
    assert_eq!(completion["error"]["code"], -32602, "{completion}");
}
