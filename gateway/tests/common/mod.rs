//! Test harness: runs the real `mcp-gateway` binary on a free loopback port and talks to it
//! over real sockets. Every process started here is killed when its `Daemon` is dropped.

pub mod cloud;
pub mod swtpm;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mcp-gateway");

/// A running gateway and what it has logged so far.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub config_path: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// A configuration file in a fresh temporary directory, bound to port 0 unless it says otherwise.
pub fn config_file(toml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcp-edge.toml");
    let text = if toml.contains("bind_address") {
        toml.to_owned()
    } else if toml.contains("[gateway]") {
        toml.replacen("[gateway]", "[gateway]\nbind_address = \"127.0.0.1:0\"", 1)
    } else {
        format!("[gateway]\nbind_address = \"127.0.0.1:0\"\n{toml}")
    };
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

impl Daemon {
    /// Starts `mcp-gateway serve --config` with `toml` and waits until it listens.
    pub fn start(toml: &str) -> Daemon {
        Self::start_with(toml, |_| {})
    }

    /// Like [`Daemon::start`], letting the test adjust the command (environment, fds).
    pub fn start_with(toml: &str, adjust: impl FnOnce(&mut Command)) -> Daemon {
        let (dir, path) = config_file(toml);
        let mut command = Command::new(BIN);
        command.arg("serve").arg("--config").arg(&path);
        command
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM");
        adjust(&mut command);
        Self::spawn(command, dir, path)
    }

    pub fn spawn(mut command: Command, dir: tempfile::TempDir, config_path: PathBuf) -> Daemon {
        // State (the offline queue) stays in the test's directory, not the user's.
        if !command.get_envs().any(|(k, _)| k == "STATE_DIRECTORY") {
            command.env("STATE_DIRECTORY", dir.path());
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command.env_remove("MCP_EDGE_LOG");
        let mut child = command.spawn().expect("start mcp-gateway");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[gateway] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let mut daemon = Daemon {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            config_path,
            logs,
            _dir: dir,
        };
        let line = daemon.wait_for_log("listening address=", Duration::from_secs(20));
        let addr = line
            .split("address=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        daemon.addr = addr.parse().unwrap();
        daemon
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits for a log line containing `needle` and returns it; panics with the log on timeout.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "gateway exited ({status}) before logging {needle:?}:\n{}",
                    self.logs().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "no log line {needle:?} within {timeout:?}:\n{}",
                self.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "gateway still running after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Log lines at WARN or ERROR level.
    pub fn problems_logged(&self) -> Vec<String> {
        self.logs()
            .into_iter()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect()
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
    }

    pub fn get(&self, path: &str) -> Response {
        send(
            &mut self.connect(),
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `mcp-gateway serve --config CONFIG` with `STATE_DIRECTORY=state` to its exit, for
/// start-ups that must fail; the output carries the exit code and the log.
pub fn serve_until_exit(config: &Path, state: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .env("STATE_DIRECTORY", state)
        .output()
        .unwrap()
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `error.code` of a JSON error body, after checking the whole shape.
    pub fn error_code(&self) -> String {
        let json = self.json();
        let error = &json["error"];
        assert_eq!(
            error["status"], self.status,
            "error.status must repeat the HTTP status: {json}"
        );
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error.message missing: {json}"
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
        error["code"].as_str().unwrap().to_owned()
    }
}

/// The status and headers of a response.
fn read_head(reader: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    read_head_after(&status_line, reader).unwrap()
}

/// The status from `status_line` and the headers that follow it.
fn read_head_after(
    status_line: &str,
    reader: &mut impl BufRead,
) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(&format!("no status line: {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').ok_or_else(|| invalid(line))?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Ok((status, headers))
}

/// `POST path` with a JSON body; reads the whole response, chunked or not.
pub fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Response {
    try_post_json(addr, path, body).unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// [`post_json`] for a gateway that may die mid-request: an I/O failure is an `Err`.
pub fn try_post_json(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> std::io::Result<Response> {
    let body = body.to_string();
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(raw.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    if reader.read_line(&mut status_line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let (status, headers) = read_head_after(&status_line, &mut reader)?;
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim(), 16)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    })
}

/// The `(event, data)` pairs of a server-sent-events body (`event` is "message" when absent).
pub fn sse_events(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            let mut name = "message".to_owned();
            let mut data = Vec::new();
            for line in event.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push(d);
                }
            }
            (name, data.join("\n"))
        })
        .collect()
}

/// Writes `raw` and reads one response (headers plus `Content-Length` bytes).
pub fn send(stream: &mut TcpStream, raw: &str) -> Response {
    stream.write_all(raw.as_bytes()).unwrap();
    read_response(stream)
}

pub fn read_response(stream: &mut TcpStream) -> Response {
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader);
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    Response {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

/// A stateless (2026-07-28) MCP request with a bearer token; the JSON-RPC message answered.
pub fn mcp_call(
    daemon: &Daemon,
    token: &str,
    method: &str,
    params: serde_json::Value,
) -> serde_json::Value {
    let mut params = params;
    params["_meta"] = serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": { "name": "auth-test", "version": "1" }
    });
    let body = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params })
        .to_string();
    let name = params["name"]
        .as_str()
        .or(params["uri"].as_str())
        .map_or(String::new(), |n| format!("Mcp-Name: {n}\r\n"));
    let raw = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: {method}\r\n{name}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = daemon.connect();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .map(|l| l.strip_prefix("data:").unwrap_or(l).trim())
        .find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .filter(|v| v.is_object())
        })
        .unwrap_or_else(|| panic!("no JSON-RPC answer: {text}"))
}

/// The `mcp` line of `/health`: the catalog's size and each upstream's state.
pub fn mcp_health(daemon: &Daemon) -> String {
    daemon.get("/health").json()["subsystems"]["mcp"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A free loopback port, for a server that must come back on the same address.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Value of a metric sample line that starts with `prefix` (name plus labels), if present.
pub fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// Paths of the Python and Node test tools that `scripts/test.sh` installs.
pub struct TestTools {
    pub python: PathBuf,
    pub node: PathBuf,
    pub node_modules: PathBuf,
    /// The reference GGUF model (SmolLM2-135M-Instruct Q4_1).
    pub model: PathBuf,
}

/// Reads `.cache/test-tools/env`; fails the test with what to run when the tools are missing.
pub fn test_tools() -> TestTools {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let env_file = root.join(".cache/test-tools/env");
    let text = std::fs::read_to_string(&env_file).unwrap_or_else(|_| {
        panic!(
            "{} is missing: the test tools (Python SDK, Node 24, conformance suite, everything \
             server, reference model) are not installed. Run `bash scripts/test.sh`, which \
             installs them.",
            env_file.display()
        )
    });
    let get = |key: &str| -> PathBuf {
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} missing from {}", env_file.display()));
        let path = PathBuf::from(value);
        assert!(
            path.exists(),
            "{} (from {}) does not exist; run `bash scripts/test.sh`",
            path.display(),
            env_file.display()
        );
        path
    };
    TestTools {
        python: get("PYTHON"),
        node: get("NODE"),
        node_modules: get("NODE_MODULES"),
        model: get("MODEL"),
    }
}

/// The Raspberry Pi 4 fixture tree the device tools read in tests.
/// The conformance fixture server (`tests/conformance-upstream`), built beside the gateway
/// (`scripts/test.sh` builds it first).
pub fn conformance_upstream() -> PathBuf {
    let path = Path::new(BIN).with_file_name("conformance-upstream");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p mcp-edge-conformance-upstream` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A writable copy of a fixture tree.
pub fn writable_fixture(fixture: &str) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(fixture),
        dir.path(),
    );
    dir
}

pub fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysroot-rpi4")
}

/// A `[device]` section pointing at the fixture tree.
pub fn fixture_device_section() -> String {
    format!("[device]\nsystem_root = \"{}\"\n", fixture_root().display())
}

/// The `token_sha256` of `token`, from `mcp-gateway hash-token`.
pub fn hash_token(token: &str) -> String {
    let mut child = Command::new(BIN)
        .arg("hash-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}
