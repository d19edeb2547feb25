//! An OpenAI-compatible chat endpoint on a free loopback port, scripted by each test. It is
//! the cloud side of the fallback tests: a real HTTP server the gateway's real client talks
//! to, with canned answers because no cloud model can run here. It also stands in for any
//! HTTP receiver that only needs a status back (the anomaly alerts' `alert_url`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// How the endpoint answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A streamed answer: these text pieces, then a stop.
    Text(Vec<String>),
    /// A streamed answer asking for one tool call.
    ToolCall { name: String, arguments: Value },
    /// An error status with an OpenAI-style error body.
    Status(u16),
    /// Close the connection without an answer: the request arrived, the answer was lost
    /// (a link cut mid-request).
    Hangup,
}

type Script = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// One request the endpoint received.
#[derive(Debug, Clone)]
pub struct Request {
    pub body: Value,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
}

/// The running endpoint. Requests it received are kept for the test to inspect.
pub struct CloudServer {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<Arc<Script>>>,
}

impl CloudServer {
    /// Starts the endpoint; `script` gets each request and its number (from 0).
    pub fn start(script: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_on(0, script)
    }

    /// [`CloudServer::start`] on a given loopback port (a peer that comes back where it was).
    pub fn start_on(
        port: u16,
        script: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Mutex<Arc<Script>>> = Arc::new(Mutex::new(Arc::new(script)));
        {
            let requests = Arc::clone(&requests);
            let script = Arc::clone(&script);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { break };
                    let requests = Arc::clone(&requests);
                    let script = Arc::clone(&script.lock().unwrap());
                    std::thread::spawn(move || serve(stream, &requests, &*script));
                }
            });
        }
        Self {
            addr,
            requests,
            script,
        }
    }

    /// Replaces the script (for example: the cloud recovers).
    pub fn set_script(&self, script: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) {
        *self.script.lock().unwrap() = Arc::new(script);
    }

    /// `models.cloud_endpoint` for this server.
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

fn serve(stream: TcpStream, requests: &Mutex<Vec<Request>>, script: &Script) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0;
    let mut authorization = None;
    let mut idempotency_key = None;
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap();
            }
            if k.eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_owned());
            }
            if k.eq_ignore_ascii_case("idempotency-key") {
                idempotency_key = Some(v.trim().to_owned());
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let request = Request {
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        authorization,
        idempotency_key,
    };
    let number = {
        let mut requests = requests.lock().unwrap();
        requests.push(request.clone());
        requests.len() - 1
    };
    let reply = script(&request, number);
    let mut stream = stream;
    let _ = answer(&mut stream, reply);
}

fn answer(stream: &mut TcpStream, reply: Reply) -> std::io::Result<()> {
    let chunk = |delta: Value, finish: Option<&str>| {
        let chunk = json!({
            "id": "cloud-1", "object": "chat.completion.chunk", "model": "cloud-test-model",
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }]
        });
        format!("data: {chunk}\n\n")
    };
    let mut events = Vec::new();
    match reply {
        Reply::Hangup => return stream.shutdown(std::net::Shutdown::Both),
        Reply::Status(status) => {
            let body = json!({ "error": { "message": format!("scripted failure {status}"), "type": "server_error" } }).to_string();
            return write!(
                stream,
                "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Reply::Text(pieces) => {
            events.push(chunk(json!({ "role": "assistant", "content": "" }), None));
            for piece in pieces {
                events.push(chunk(json!({ "content": piece }), None));
            }
            events.push(chunk(json!({}), Some("stop")));
        }
        Reply::ToolCall { name, arguments } => {
            let call = json!([{ "index": 0, "id": "call_cloud_0", "type": "function",
                "function": { "name": name, "arguments": arguments.to_string() } }]);
            events.push(chunk(
                json!({ "role": "assistant", "tool_calls": call }),
                None,
            ));
            events.push(chunk(json!({}), Some("tool_calls")));
        }
    }
    let usage = json!({ "id": "cloud-1", "object": "chat.completion.chunk", "choices": [],
        "usage": { "prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18 } });
    events.push(format!("data: {usage}\n\n"));
    events.push("data: [DONE]\n\n".into());
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    )?;
    for event in events {
        stream.write_all(event.as_bytes())?;
        stream.flush()?;
    }
    Ok(())
}
