//! `GET /v1/update` on machines that are not A/B devices: the real `rauc` without its service,
//! and no `rauc` at all. The answer from a real RAUC on a booted device is tested in the
//! whole-image tests (tests/image/test_ota.py); here, the scope and the errors.

use crate::common;
use crate::common::{hash_token, send, Daemon, Response};

fn get_update(daemon: &Daemon, token: Option<&str>) -> Response {
    let authorization = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    send(
        &mut daemon.connect(),
        &format!("GET /v1/update HTTP/1.1\r\nHost: localhost\r\n{authorization}Connection: close\r\n\r\n"),
    )
}

fn daemon_asking(rauc: &str) -> Daemon {
    Daemon::start(&format!(
        "{}[update]\nrauc = \"{rauc}\"\n\
         [[security.clients]]\nname = \"monitor\"\ntoken_sha256 = \"{}\"\nscopes = [\"power\", \"mcp\"]\n\
         [[security.clients]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\nscopes = [\"admin\"]\n",
        common::fixture_device_section(),
        hash_token("monitor-token"),
        hash_token("ops-token"),
    ))
}

#[test]
fn the_update_status_needs_the_admin_scope() {
    let daemon = daemon_asking("/nonexistent/rauc");
    assert_eq!(get_update(&daemon, None).status, 401);
    assert_eq!(get_update(&daemon, Some("stranger")).status, 401);
    let refused = get_update(&daemon, Some("monitor-token"));
    assert_eq!(refused.status, 403);
    assert_eq!(refused.error_code(), "insufficient_scope");
    let answer = get_update(&daemon, Some("ops-token"));
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.error_code(), "update_unavailable");
    let message = answer.json()["error"]["message"].to_string();
    assert!(
        message.contains("/nonexistent/rauc") && message.contains("[update] rauc"),
        "{message}"
    );
}

#[test]
fn a_machine_with_rauc_but_no_rauc_service_says_what_rauc_said() {
    let rauc = "/usr/bin/rauc";
    assert!(
        std::path::Path::new(rauc).exists(),
        "{rauc} is missing: install Debian's rauc package (bash scripts/test.sh does)"
    );
    let daemon = daemon_asking(rauc);
    let answer = get_update(&daemon, Some("ops-token"));
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.error_code(), "update_unavailable");
    let message = answer.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // This machine runs no RAUC service: rauc's own reason is passed on, with its exit status.
    assert!(message.starts_with("rauc status failed: "), "{message}");
    assert!(
        message.contains("D-Bus") && message.contains("exit status: 1"),
        "{message}"
    );
}
