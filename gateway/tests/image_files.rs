//! The files every image ships (`systemd/`, `rootfs-overlay/`), checked with the tools that
//! consume them: the unit files with `systemd-analyze`, the device configuration with
//! `mcp-gateway check-config`. Booting them in an image is the QEMU suite's job.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::BIN;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn systemd_analyze() -> Command {
    let path = Path::new("/usr/bin/systemd-analyze");
    assert!(
        path.exists(),
        "systemd-analyze is missing: install Debian's systemd package (scripts/test.sh does)"
    );
    Command::new(path)
}

/// The units with `ExecStart` pointing at the binary under test, and the TPM drop-in where
/// images install it (`mcp-gateway.service.d/`), in a temporary directory.
fn units_for_this_build() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let service = std::fs::read_to_string(repo().join("systemd/mcp-gateway.service")).unwrap();
    let service = service.replace("/usr/bin/mcp-gateway", BIN);
    let service_path = dir.path().join("mcp-gateway.service");
    std::fs::write(&service_path, service).unwrap();
    let socket_path = dir.path().join("mcp-gateway.socket");
    std::fs::copy(repo().join("systemd/mcp-gateway.socket"), &socket_path).unwrap();
    let drop_ins = dir.path().join("mcp-gateway.service.d");
    std::fs::create_dir(&drop_ins).unwrap();
    std::fs::copy(
        repo().join("systemd/mcp-gateway-tpm.conf"),
        drop_ins.join("tpm.conf"),
    )
    .unwrap();
    (dir, service_path, socket_path)
}

/// `systemd-analyze verify` passes on `units` without an unknown key or a failure.
fn verify(units: &[PathBuf]) {
    let output = systemd_analyze()
        .arg("verify")
        .args(units)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    assert!(
        !report.contains("Unknown key") && !report.contains("Failed"),
        "{report}"
    );
}

#[test]
fn unit_files_verify() {
    let (_dir, service, socket) = units_for_this_build();
    verify(&[service, socket]);
}

#[test]
fn service_sandbox_exposure_is_at_most_2() {
    let (_dir, service, _) = units_for_this_build();
    let output = systemd_analyze()
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&service)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("{report}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    eprintln!("{line}");
    assert!(score <= 2.0, "exposure {score} is over 2.0:\n{report}");
}

#[test]
fn the_device_configuration_is_valid() {
    let file = repo().join("rootfs-overlay/etc/mcp/mcp-edge.toml");
    let output = Command::new(BIN)
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_socket_unit_names_its_socket_for_the_gateway() {
    let socket = std::fs::read_to_string(repo().join("systemd/mcp-gateway.socket")).unwrap();
    let name = mcp_edge_gateway::systemd::HTTP_SOCKET_NAME;
    assert!(
        socket
            .lines()
            .any(|l| l == format!("FileDescriptorName={name}")),
        "{socket}"
    );
}

#[test]
fn the_cpufreq_helper_units_verify_and_watch_the_file_the_gateway_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for name in ["mcp-gateway-cpufreq.path", "mcp-gateway-cpufreq.service"] {
        let text = std::fs::read_to_string(repo().join("systemd").join(name)).unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text.replace("/usr/bin/mcp-gateway", BIN)).unwrap();
        units.push(path);
    }
    verify(&units);

    // The helper is root but holds no capability and no network.
    let output = systemd_analyze()
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&units[1])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    eprintln!("{report}");
    for check in ["CapabilityBoundingSet=", "PrivateNetwork="] {
        let line = report.lines().find(|l| l.contains(check)).unwrap();
        assert!(line.starts_with('✓'), "{line}");
    }

    // The path unit watches the file the image's gateway writes its requests to.
    let path_unit = std::fs::read_to_string(&units[0]).unwrap();
    let config =
        mcp_edge_gateway::Config::from_file(&repo().join("rootfs-overlay/etc/mcp/mcp-edge.toml"))
            .unwrap();
    assert_eq!(
        config.power.cpufreq,
        mcp_edge_gateway::config::CpufreqControl::Helper
    );
    let watched = format!("PathChanged={}", config.power.cpufreq_request.display());
    assert!(path_unit.lines().any(|l| l == watched), "{path_unit}");
}
