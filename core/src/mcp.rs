//! A synchronous MCP server for one client on a stream of newline-delimited JSON-RPC messages
//! (MCP's stdio transport), serving the tools of a [`Toolbox`]. Both protocol revisions the
//! gateway serves: 2025-11-25 (and the older handshake revisions) through `initialize`, and the
//! stateless 2026-07-28 (`server/discover`, the revision in every request's `_meta`, `resultType`
//! on every result). No threads, no async runtime and nothing of the OS but the two streams, so
//! that it runs under a WASI runtime; the gateway itself serves MCP with the official SDK.

use std::io::{self, BufRead, Read, Write};

use serde_json::{json, Map, Value};

/// The stateless revision: no `initialize`, the revision in each request's `_meta`.
pub const STATELESS_REVISION: &str = "2026-07-28";
/// The revisions a client reaches through `initialize`, newest first.
pub const HANDSHAKE_REVISIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Longest message read; a longer line is answered with an error and skipped.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// A tool as `tools/list` shows it.
#[derive(Debug, Clone)]
pub struct Tool {
    pub name: &'static str,
    pub description: &'static str,
    /// JSON Schema of the arguments object.
    pub input_schema: Value,
}

/// What a [`Server`] serves.
pub trait Toolbox {
    fn tools(&self) -> Vec<Tool>;
    /// Runs the tool `name`; `None` when there is no such tool. `Ok` is a JSON object (the
    /// result's `structuredContent`); `Err` is a tool error the client reads as a result with
    /// `isError` (bad arguments included, as MCP asks).
    fn call(&self, name: &str, arguments: &Map<String, Value>) -> Option<Result<Value, String>>;
}

/// One client's MCP server.
#[derive(Debug)]
pub struct Server<T> {
    toolbox: T,
    name: &'static str,
    version: &'static str,
    instructions: &'static str,
    /// The revision `initialize` settled on, if a client sent one.
    handshake: Option<&'static str>,
}

/// The revision a request is answered under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Revision {
    /// None yet: only `ping` and `server/discover` are answered.
    Unknown,
    Handshake,
    Stateless,
}

/// A JSON-RPC error.
#[derive(Debug)]
struct RpcError {
    code: i64,
    message: String,
    data: Option<Value>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    fn into_response(self, id: Value) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(data) = self.data {
            error["data"] = data;
        }
        json!({"jsonrpc": "2.0", "id": id, "error": error})
    }
}

impl<T: Toolbox> Server<T> {
    pub fn new(
        toolbox: T,
        name: &'static str,
        version: &'static str,
        instructions: &'static str,
    ) -> Self {
        Self {
            toolbox,
            name,
            version,
            instructions,
            handshake: None,
        }
    }

    /// Serves messages from `input` until it ends, answering each request on `output`.
    pub fn serve(&mut self, mut input: impl BufRead, mut output: impl Write) -> io::Result<()> {
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = Read::by_ref(&mut input)
                .take(MAX_MESSAGE_BYTES as u64 + 1)
                .read_until(b'\n', &mut line)?;
            if read == 0 {
                return Ok(());
            }
            let answer = if line.len() > MAX_MESSAGE_BYTES && line.last() != Some(&b'\n') {
                skip_line(&mut input)?;
                Some(
                    RpcError::new(
                        INVALID_REQUEST,
                        format!("message over {MAX_MESSAGE_BYTES} bytes"),
                    )
                    .into_response(Value::Null)
                    .to_string(),
                )
            } else {
                match std::str::from_utf8(&line) {
                    Ok(text) if text.trim().is_empty() => None,
                    Ok(text) => self.handle(text),
                    Err(_) => Some(
                        RpcError::new(PARSE_ERROR, "message is not UTF-8")
                            .into_response(Value::Null)
                            .to_string(),
                    ),
                }
            };
            if let Some(answer) = answer {
                output.write_all(answer.as_bytes())?;
                output.write_all(b"\n")?;
                output.flush()?;
            }
        }
    }

    /// Answers one message; `None` for a notification or a response, which need no answer.
    pub fn handle(&mut self, message: &str) -> Option<String> {
        let answer = match serde_json::from_str(message) {
            Ok(message) => self.answer(message)?,
            Err(e) => RpcError::new(PARSE_ERROR, format!("message is not JSON: {e}"))
                .into_response(Value::Null),
        };
        Some(answer.to_string())
    }

    fn answer(&mut self, message: Value) -> Option<Value> {
        let Value::Object(mut message) = message else {
            let why = "a message must be one JSON object (MCP has no batches)";
            return reject(Value::Null, INVALID_REQUEST, why);
        };
        let id = message.remove("id");
        let Some(method) = message.remove("method") else {
            // A response to a request this server never sends: nothing to answer.
            if message.contains_key("result") || message.contains_key("error") {
                return None;
            }
            return reject(
                id.unwrap_or(Value::Null),
                INVALID_REQUEST,
                "a request needs a method",
            );
        };
        // A notification: nothing to answer (this server acts on none).
        let id = id?;
        if !matches!(id, Value::String(_) | Value::Number(_)) {
            return reject(
                Value::Null,
                INVALID_REQUEST,
                "id must be a string or a number",
            );
        }
        if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return reject(id, INVALID_REQUEST, "jsonrpc must be \"2.0\"");
        }
        let Value::String(method) = method else {
            return reject(id, INVALID_REQUEST, "method must be a string");
        };
        let params = match message.remove("params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(params)) => params,
            Some(_) => return reject(id, INVALID_PARAMS, "params must be an object"),
        };
        Some(match self.dispatch(&method, &params) {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err(e) => e.into_response(id),
        })
    }

    fn dispatch(&mut self, method: &str, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let revision = self.revision(params)?;
        let mut result = match (method, revision) {
            ("initialize", Revision::Stateless) => {
                return Err(RpcError::new(
                    INVALID_REQUEST,
                    "2026-07-28 has no initialize: send requests with the revision in _meta",
                ))
            }
            ("initialize", _) => self.initialize(params)?,
            ("server/discover", _) => self.discover(),
            ("ping", _) => json!({}),
            (_, Revision::Unknown) => {
                return Err(RpcError::new(
                    INVALID_REQUEST,
                    format!(
                        "no protocol revision yet: send initialize first (2025-11-25), or put \
                         \"{META_PROTOCOL_VERSION}\": \"{STATELESS_REVISION}\" in the request's _meta"
                    ),
                ))
            }
            ("tools/list", _) => self.list_tools(revision),
            ("tools/call", _) => self.call_tool(params)?,
            (other, _) => {
                return Err(RpcError::new(
                    METHOD_NOT_FOUND,
                    format!("method not found: {other} (this server has tools only)"),
                ))
            }
        };
        if revision == Revision::Stateless {
            result["resultType"] = json!("complete");
        }
        Ok(result)
    }

    /// The revision of a request: the one in its `_meta`, else the session's.
    fn revision(&self, params: &Map<String, Value>) -> Result<Revision, RpcError> {
        let requested = params
            .get("_meta")
            .and_then(|meta| meta.get(META_PROTOCOL_VERSION));
        match requested {
            Some(v) if v == STATELESS_REVISION => Ok(Revision::Stateless),
            Some(v) => Err(RpcError {
                code: UNSUPPORTED_PROTOCOL_VERSION,
                message: format!(
                    "unsupported protocol version {v}: this server takes {STATELESS_REVISION} in _meta, or {} through initialize",
                    HANDSHAKE_REVISIONS.join(", ")
                ),
                data: Some(json!({
                    "supported": supported_revisions(),
                    "requested": v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                })),
            }),
            None if self.handshake.is_some() => Ok(Revision::Handshake),
            None => Ok(Revision::Unknown),
        }
    }

    fn initialize(&mut self, params: &Map<String, Value>) -> Result<Value, RpcError> {
        if self.handshake.is_some() {
            return Err(RpcError::new(
                INVALID_REQUEST,
                "initialize was already answered on this connection",
            ));
        }
        let Some(requested) = params.get("protocolVersion").and_then(Value::as_str) else {
            return Err(RpcError::new(
                INVALID_PARAMS,
                "initialize needs params.protocolVersion (a string)",
            ));
        };
        // The requested revision if it is one of ours, else the newest (the client decides
        // whether it can speak that).
        let revision = HANDSHAKE_REVISIONS
            .into_iter()
            .find(|r| *r == requested)
            .unwrap_or(HANDSHAKE_REVISIONS[0]);
        self.handshake = Some(revision);
        Ok(json!({
            "protocolVersion": revision,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": self.name, "version": self.version},
            "instructions": self.instructions,
        }))
    }

    fn discover(&self) -> Value {
        json!({
            "supportedVersions": supported_revisions(),
            "capabilities": {"tools": {}},
            "instructions": self.instructions,
            // The answer is the same for everyone and changes only with the build.
            "ttlMs": 0,
            "cacheScope": "public",
            "_meta": {META_SERVER_INFO: {"name": self.name, "version": self.version}},
        })
    }

    fn list_tools(&self, revision: Revision) -> Value {
        let tools: Vec<Value> = self
            .toolbox
            .tools()
            .into_iter()
            .map(|t| json!({"name": t.name, "description": t.description, "inputSchema": t.input_schema}))
            .collect();
        let mut result = json!({"tools": tools});
        if revision == Revision::Stateless {
            // The list is compiled in: it never changes while this server runs.
            result["ttlMs"] = json!(0);
            result["cacheScope"] = json!("public");
        }
        result
    }

    fn call_tool(&self, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let Some(name) = params.get("name").and_then(Value::as_str) else {
            return Err(RpcError::new(
                INVALID_PARAMS,
                "tools/call needs params.name (a string)",
            ));
        };
        let no_arguments = Map::new();
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => &no_arguments,
            Some(Value::Object(arguments)) => arguments,
            Some(_) => {
                return Err(RpcError::new(
                    INVALID_PARAMS,
                    "tools/call params.arguments must be an object",
                ))
            }
        };
        match self.toolbox.call(name, arguments) {
            None => Err(RpcError::new(
                INVALID_PARAMS,
                format!("unknown tool {name:?}: tools/list names the tools"),
            )),
            Some(Ok(value)) => Ok(json!({
                "content": [{"type": "text", "text": value.to_string()}],
                "structuredContent": value,
                "isError": false,
            })),
            Some(Err(message)) => Ok(json!({
                "content": [{"type": "text", "text": message}],
                "isError": true,
            })),
        }
    }
}

fn reject(id: Value, code: i64, message: &str) -> Option<Value> {
    Some(RpcError::new(code, message).into_response(id))
}

fn supported_revisions() -> Vec<&'static str> {
    std::iter::once(STATELESS_REVISION)
        .chain(HANDSHAKE_REVISIONS)
        .collect()
}

/// Discards input up to and including the next newline.
fn skip_line(input: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buffer = input.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        match buffer.iter().position(|b| *b == b'\n') {
            Some(end) => {
                input.consume(end + 1);
                return Ok(());
            }
            None => {
                let len = buffer.len();
                input.consume(len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Toolbox for Echo {
        fn tools(&self) -> Vec<Tool> {
            vec![Tool {
                name: "echo",
                description: "its arguments",
                input_schema: json!({"type": "object"}),
            }]
        }

        fn call(
            &self,
            name: &str,
            arguments: &Map<String, Value>,
        ) -> Option<Result<Value, String>> {
            (name == "echo").then(|| Ok(Value::Object(arguments.clone())))
        }
    }

    fn conversation(input: &[u8]) -> Vec<Value> {
        let mut output = Vec::new();
        Server::new(Echo, "test", "0", "")
            .serve(input, &mut output)
            .unwrap();
        output
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect()
    }

    #[test]
    fn stateless_requests_carry_their_revision_and_get_result_types() {
        let meta = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}"#;
        let input = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\",\"params\":{{{meta}}}}}\n\
             {{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{{{meta},\"name\":\"echo\",\"arguments\":{{\"a\":1}}}}}}\n"
        );
        let answers = conversation(input.as_bytes());
        assert_eq!(answers[0]["result"]["supportedVersions"][0], "2026-07-28");
        assert_eq!(answers[0]["result"]["resultType"], "complete");
        assert_eq!(answers[1]["result"]["structuredContent"], json!({"a": 1}));
        assert_eq!(answers[1]["result"]["resultType"], "complete");
    }

    #[test]
    fn an_oversized_message_is_refused_and_the_next_one_answered() {
        let mut input = vec![b'x'; MAX_MESSAGE_BYTES + 100];
        input.extend_from_slice(b"\n{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"}\n");
        let answers = conversation(&input);
        assert_eq!(answers.len(), 2, "{answers:?}");
        assert_eq!(answers[0]["error"]["code"], INVALID_REQUEST);
        assert_eq!(answers[1], json!({"jsonrpc": "2.0", "id": 9, "result": {}}));
    }

    #[test]
    fn initialize_answers_the_requested_revision_or_the_newest_once() {
        let answers = conversation(
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2023-01-01\"}}\n\
              {\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\"}}\n\
              {\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\"}\n",
        );
        assert_eq!(answers[0]["result"]["protocolVersion"], "2025-11-25");
        assert_eq!(answers[1]["error"]["code"], INVALID_REQUEST);
        assert_eq!(answers[2]["result"]["tools"][0]["name"], "echo");
        assert!(answers[2]["result"].get("resultType").is_none());
    }
}
