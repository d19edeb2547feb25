//! The files every image ships (`systemd/`, `rootfs-overlay/`), checked with the tools that
//! consume them: the unit files with `systemd-analyze`, the device configuration with
//! `mcp-gateway check-config`. Booting them in an image is the QEMU suite's job.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::BIN;

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

#[test]
fn the_mark_good_unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(repo().join("systemd/mcp-gateway-mark-good.service")).unwrap();
    let script = repo().join("rootfs-overlay/usr/lib/mcp-edge/mark-good");
    let path = dir.path().join("mcp-gateway-mark-good.service");
    std::fs::write(
        &path,
        text.replace("/usr/lib/mcp-edge/mark-good", script.to_str().unwrap()),
    )
    .unwrap();
    verify(&[path]);
}

/// Runs the RAUC boot backend against `esp`; returns (exit code, stdout, stderr).
fn backend(esp: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(repo().join("rootfs-overlay/usr/lib/mcp-edge/rauc-systemd-boot"))
        .args(args)
        .env("MCP_EDGE_ESP", esp)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A slot's root file system as the backend reads it: FILES are (path, content) pairs.
fn slot_tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let slot = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let path = slot.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    slot
}

/// The backend's idea of the boot order must be systemd-boot's: entries with no tries left
/// last, then the highest generation. set-primary needs the slot's block device, so the entry
/// it would write is put in place here; the boot loader's countdown is done by renaming, as
/// systemd-boot does at each boot. The whole-image tests run the real thing.
#[test]
fn the_boot_backend_follows_the_boot_loaders_order_and_counts() {
    let esp = tempfile::tempdir().unwrap();
    let slot = slot_tree(&[
        ("boot/vmlinuz-6.1.0-1-cloud-amd64", "kernel"),
        ("boot/initrd.img-6.1.0-1-cloud-amd64", "initrd"),
        ("etc/kernel/cmdline", "ro quiet\n"),
    ]);
    let slot_dir = slot.path().to_str().unwrap();
    let esp_dir = esp.path().to_str().unwrap();

    let seeded = backend(esp.path(), &["seed", esp_dir, slot_dir, "a", "1111"]);
    assert_eq!(seeded.0, 0, "{seeded:?}");
    let entries = esp.path().join("loader/entries");
    let entry = std::fs::read_to_string(entries.join("mcp-edge-1-a.conf")).unwrap();
    assert!(entry.contains("linux /EFI/mcp-edge/a/vmlinuz"), "{entry}");
    assert!(
        entry.contains("initrd /EFI/mcp-edge/a/initrd.img"),
        "{entry}"
    );
    assert!(
        entry.contains("options root=PARTUUID=1111 rauc.slot=a ro quiet"),
        "{entry}"
    );
    assert_eq!(
        std::fs::read_to_string(esp.path().join("EFI/mcp-edge/a/initrd.img")).unwrap(),
        "initrd"
    );
    let primary = || backend(esp.path(), &["get-primary"]).1;
    let state = |slot: &str| backend(esp.path(), &["get-state", slot]).1;
    assert_eq!(
        (primary(), state("a"), state("b")),
        ("a".into(), "good".into(), "bad".into())
    );

    // Slot b made primary with three tries, then three boots that never got healthy.
    let mut name = entries.join("mcp-edge-2-b+3.conf");
    std::fs::write(&name, entry.replace("slot a", "slot b")).unwrap();
    assert_eq!((primary(), state("b")), ("b".into(), "good".into()));
    for counter in ["+2-1", "+1-2", "+0-3"] {
        let next = entries.join(format!("mcp-edge-2-b{counter}.conf"));
        std::fs::rename(&name, &next).unwrap();
        name = next;
    }
    assert_eq!((primary(), state("b")), ("a".into(), "bad".into()));

    // mark-good on b (as after a healthy boot) drops the counter; mark-bad gives it none.
    assert_eq!(backend(esp.path(), &["set-state", "b", "good"]).0, 0);
    assert!(entries.join("mcp-edge-2-b.conf").exists());
    assert_eq!((primary(), state("b")), ("b".into(), "good".into()));
    assert_eq!(backend(esp.path(), &["set-state", "b", "bad"]).0, 0);
    assert!(entries.join("mcp-edge-2-b+0.conf").exists());
    assert_eq!(primary(), "a");

    let refused = backend(esp.path(), &["set-state", "c", "good"]);
    assert_eq!(refused.0, 1);
    assert!(refused.2.contains("unknown slot 'c'"), "{refused:?}");
}

/// A Yocto slot: the kernel is /boot/bzImage (or Image, zImage) and there is no initrd; the
/// entry then has no initrd line.
#[test]
fn the_boot_backend_seeds_a_yocto_slot_without_an_initrd() {
    let esp = tempfile::tempdir().unwrap();
    let slot = slot_tree(&[
        ("boot/Image", "arm64 kernel"),
        ("etc/kernel/cmdline", "ro\n"),
    ]);
    let (esp_dir, slot_dir) = (esp.path().to_str().unwrap(), slot.path().to_str().unwrap());

    let seeded = backend(esp.path(), &["seed", esp_dir, slot_dir, "a", "2222"]);
    assert_eq!(seeded.0, 0, "{seeded:?}");
    let entry =
        std::fs::read_to_string(esp.path().join("loader/entries/mcp-edge-1-a.conf")).unwrap();
    assert!(!entry.contains("initrd"), "{entry}");
    assert_eq!(
        std::fs::read_to_string(esp.path().join("EFI/mcp-edge/a/vmlinuz")).unwrap(),
        "arm64 kernel"
    );

    std::fs::remove_file(slot.path().join("boot/Image")).unwrap();
    let refused = backend(esp.path(), &["seed", esp_dir, slot_dir, "b", "3333"]);
    assert_eq!(refused.0, 1);
    assert!(refused.2.contains("no kernel in"), "{refused:?}");
}
