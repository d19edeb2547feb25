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

/// A recording relay in front of a [`Swtpm`] (its command and control ports): what a probe on
/// the TPM's bus would see. Connections are relayed both ways and every byte is kept.
pub struct BusTap {
    /// The command port the relay listens on (the control port is the next one).
    pub port: u16,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl BusTap {
    pub fn start(target: &Swtpm) -> BusTap {
        use std::io::{Read, Write};
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let port = free_port_pair();
        for offset in 0..2 {
            let listener = TcpListener::bind(("127.0.0.1", port + offset)).expect("bind the tap");
            let upstream = target.port + offset;
            let seen = std::sync::Arc::clone(&seen);
            std::thread::spawn(move || {
                for client in listener.incoming().map_while(Result::ok) {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        continue;
                    };
                    for (mut from, mut to) in [
                        (
                            client.try_clone().expect("clone"),
                            server.try_clone().expect("clone"),
                        ),
                        (server, client),
                    ] {
                        let seen = std::sync::Arc::clone(&seen);
                        std::thread::spawn(move || {
                            let mut buffer = [0u8; 4096];
                            while let Ok(n) = from.read(&mut buffer) {
                                if n == 0 || to.write_all(&buffer[..n]).is_err() {
                                    break;
                                }
                                seen.lock().expect("tap").extend_from_slice(&buffer[..n]);
                            }
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        });
                    }
                }
            });
        }
        BusTap { port, seen }
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Whether `needle` went over the link in clear, in either direction.
    pub fn saw(&self, needle: &[u8]) -> bool {
        let seen = self.seen.lock().expect("tap");
        seen.windows(needle.len()).any(|w| w == needle)
    }

    pub fn bytes_seen(&self) -> usize {
        self.seen.lock().expect("tap").len()
    }
}
