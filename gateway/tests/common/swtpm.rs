//! A real TPM 2.0 simulator (swtpm) on free loopback ports, killed when dropped, and the
//! tpm2-tools that check the gateway's work independently.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `swtpm socket --tpm2` with its own state directory.
pub struct Swtpm {
    child: Child,
    /// The command port; the control port is the next one (what the swtpm TCTI expects).
    pub port: u16,
    _state: tempfile::TempDir,
}

fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is not installed: run `bash scripts/test.sh`, which installs it (Debian package {package})"
    );
}

/// Two consecutive free ports (swtpm's command and control ports).
fn free_port_pair() -> u16 {
    loop {
        let first = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = first.local_addr().expect("local address").port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

impl Swtpm {
    /// Starts a fresh TPM (manufactured on first use, started up, PCRs at their reset values).
    pub fn start() -> Swtpm {
        require("swtpm", "swtpm");
        for _ in 0..10 {
            let state = tempfile::tempdir().expect("tempdir");
            let port = free_port_pair();
            let mut child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .arg("--tpmstate")
                .arg(format!("dir={}", state.path().display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start swtpm");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // Lost the port to another process: try another pair.
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Swtpm {
                        child,
                        port,
                        _state: state,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("swtpm did not start on a free port in 10 attempts");
    }

    /// The TCTI string for `[security] tpm_device` and tpm2-tools' `-T`.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Runs a tpm2-tools command against this TPM.
    pub fn tool(&self, tool: &str, args: &[&str]) -> Output {
        require(tool, "tpm2-tools");
        Command::new(tool)
            .args(["-T", &self.tcti()])
            .args(args)
            .output()
            .expect("run tpm2-tools")
    }

    /// SHA-256 value of `pcr`, read by `tpm2_pcrread` (independently of the gateway).
    pub fn pcr(&self, pcr: u8) -> [u8; 32] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("pcr.bin");
        let output = self.tool(
            "tpm2_pcrread",
            &[
                &format!("sha256:{pcr}"),
                "-o",
                out.to_str().expect("utf-8 path"),
            ],
        );
        assert!(
            output.status.success(),
            "tpm2_pcrread: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::read(&out)
            .expect("PCR value")
            .try_into()
            .expect("32 bytes")
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tpm2_checkquote` (no TPM needed): exit status and output.
pub fn checkquote(dir: &Path, args: &[&str]) -> Output {
    require("tpm2_checkquote", "tpm2-tools");
    Command::new("tpm2_checkquote")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run tpm2_checkquote")
}
