//! The gateway confining itself (`[security] sandbox = true`), seen from outside through
//! `/proc/<pid>/status` and by using it: started as root it becomes `nobody` after binding its
//! port; no_new_privs, no capabilities, Landlock and seccomp are in force (its own checks at
//! start: listing `/` and `sched_setaffinity` denied); and it still serves HTTP, MCP tools,
//! the offline queue and TPM quotes.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use crate::common;
use crate::common::swtpm::Swtpm;
use crate::common::{Daemon, BIN};

fn status_of(pid: u32) -> BTreeMap<String, String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(":\t"))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn the_sandboxed_gateway_drops_root_confines_itself_and_still_serves() {
    let root = nix::unistd::Uid::effective().is_root();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let swtpm = Swtpm::start();
    // The state directory must belong to the user the gateway becomes.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    if root {
        nix::unistd::chown(&state, Some(nobody.uid), Some(nobody.gid)).unwrap();
    }
    let user = if root { "user = \"nobody\"\n" } else { "" };
    let config = dir.path().join("mcp-edge.toml");
    std::fs::write(
        &config,
        format!(
            // The device tools read this machine (system_root = "/", as on a device).
            "[gateway]\nbind_address = \"127.0.0.1:0\"\n[security]\nsandbox = true\n{user}\
             use_tpm = true\ntpm_device = \"{}\"\n",
            swtpm.tcti(),
        ),
    )
    .unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--config"])
        .arg(&config)
        .env("STATE_DIRECTORY", &state);
    let mut daemon = Daemon::spawn(command, tempfile::tempdir().unwrap(), config);
    let line = daemon.wait_for_log("sandbox in force", Duration::from_secs(5));
    eprintln!("{line}");
    assert!(line.contains("no_new_privs"), "{line}");
    // Fully, or partially on a kernel with an older Landlock ABI: either way `/` is refused.
    assert!(
        line.contains("Landlock fully enforced") || line.contains("Landlock partially enforced"),
        "{line}"
    );
    assert!(line.contains("listing / denied"), "{line}");
    assert!(line.contains("sched_setaffinity denied"), "{line}");

    let status = status_of(daemon.child.id());
    let uids: Vec<&str> = status["Uid"].split_whitespace().collect();
    if root {
        assert!(line.contains("user nobody"), "{line}");
        assert_eq!(
            uids,
            vec![nobody.uid.to_string(); 4],
            "real, effective, saved and fs uid"
        );
        assert_eq!(status["CapBnd"], "0000000000000000");
    }
    for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(status[set], "0000000000000000", "{set}");
    }
    assert_eq!(status["NoNewPrivs"], "1");
    assert_eq!(status["Seccomp"], "2");

    // Still serving: HTTP, a device tool over MCP, the queue's database, a TPM quote.
    assert_eq!(daemon.get("/health").status, 200);
    assert_eq!(daemon.get("/v1/queue/status").status, 200);
    let quote = daemon.get("/v1/attestation?nonce=0011223344556677");
    assert_eq!(quote.status, 200, "{}", quote.body);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use rmcp::transport::StreamableHttpClientTransport;
        use rmcp::ServiceExt;
        let transport =
            StreamableHttpClientTransport::from_uri(format!("http://{}/mcp", daemon.addr));
        let client = ().serve(transport).await.unwrap();
        let result = client
            .call_tool(rmcp::model::CallToolRequestParams::new("device_info"))
            .await
            .unwrap();
        assert_ne!(result.is_error, Some(true), "{result:?}");
        client.cancel().await.unwrap();
    });
}

/// A state directory that does not exist yet could not be reached once Landlock is in force:
/// start-up stops with exit 78 and says so.
#[test]
fn a_missing_state_directory_stops_start_up() {
    let (dir, config) = common::config_file("[security]\nsandbox = true\n");
    let output = common::serve_until_exit(&config, &dir.path().join("not-made-yet"));
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not-made-yet does not exist"), "{stderr}");
}

/// Started as root, a user that does not exist stops start-up with exit 78 and names the key;
/// started unprivileged, the key has nothing to do and the report says so.
#[test]
fn the_user_to_become_is_checked() {
    let toml = "[security]\nsandbox = true\nuser = \"no-such-user-mcp-edge\"\n";
    if !nix::unistd::Uid::effective().is_root() {
        let mut daemon = Daemon::start(toml);
        daemon.wait_for_log("(not started as root)", Duration::from_secs(5));
        return;
    }
    let (dir, config) = common::config_file(toml);
    let output = common::serve_until_exit(&config, dir.path());
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("security.user \"no-such-user-mcp-edge\" does not exist"),
        "{stderr}"
    );
}
