//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in
//! `tests/node/package.json`) against the gateway, for both protocol revisions, with
//! `tests/conformance-upstream` as the only upstream and no prefix: what is scored is what the
//! gateway serves and forwards. A scored scenario the gateway could not pass would be listed,
//! with its reason, in `tests/conformance/expected-failures-<revision>.yaml` (none is today).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common;
use crate::common::{conformance_upstream, test_tools, Daemon};

/// The server scenarios the revision's frozen requirement set scores.
fn required_scenarios(tools: &common::TestTools, suite: &Path, revision: &str) -> Vec<String> {
    let output = Command::new(&tools.node)
        .arg(suite)
        .args(["list", "--server", "--requirements", revision])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .skip_while(|l| !l.starts_with("Server scenarios"))
        .skip(1)
        .map_while(|l| l.strip_prefix("  - "))
        .map(|name| name.trim().to_owned())
        .collect()
}

fn run_suite(revision: &str) {
    let tools = test_tools();
    let config = format!(
        "[[upstreams]]\nname = \"conformance\"\ncommand = \"{}\"\n",
        conformance_upstream().display()
    );
    let mut daemon = Daemon::start(&config);
    daemon.wait_for_log("upstream ready", Duration::from_secs(20));

    let suite = tools
        .node_modules
        .join("@modelcontextprotocol/conformance/dist/index.js");
    let results = tempfile::tempdir().unwrap();
    // The DNS-rebinding scenario needs the URL's host to be localhost.
    let url = format!("http://localhost:{}/mcp", daemon.addr.port());
    let mut command = Command::new(&tools.node);
    command
        .arg(&suite)
        .args(["server", "--url", &url, "--requirements", revision, "-o"])
        .arg(results.path());
    let baseline = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "tests/conformance/expected-failures-{revision}.yaml"
    ));
    if baseline.exists() {
        command.arg("--expected-failures").arg(&baseline);
    }
    // The suite's CLI runs `node` by name: Node 24 from the test tools goes first on PATH.
    let path = format!(
        "{}:{}",
        tools.node.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = command.env("PATH", path).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = format!("{stdout}\n{stderr}");

    let summary: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with('✓') || l.starts_with('✗'))
        .collect();
    let required = required_scenarios(&tools, &suite, revision);
    let scored: Vec<&&str> = summary
        .iter()
        .filter(|l| {
            required
                .iter()
                .any(|r| l[4..].starts_with(&format!("{r}:")))
        })
        .collect();
    let passed = scored.iter().filter(|l| l.starts_with('✓')).count();
    eprintln!(
        "conformance {revision}: {passed} of {} scored scenarios passed",
        scored.len()
    );
    for line in &scored {
        eprintln!("  {line}");
    }
    assert!(
        output.status.success(),
        "conformance {revision} failed (exit {:?}):\n{stdout}\n{stderr}\ngateway log:\n{}",
        output.status.code(),
        daemon.logs().join("\n")
    );
    assert_eq!(
        scored.len(),
        required.len(),
        "not every required scenario ran:\n{report}"
    );
}

#[test]
fn conformance_2025_11_25() {
    run_suite("2025-11-25");
}

#[test]
fn conformance_2026_07_28() {
    run_suite("2026-07-28");
}
