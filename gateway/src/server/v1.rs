//! The completion APIs: OpenAI-compatible `/v1/chat/completions` and `/v1/models`, and
//! `/v1/mcp/completions`, where the model may use the gateway's MCP tools. Answers say which
//! backend produced them and why (`mcp_edge` in the body, `X-MCP-Edge-Backend` header);
//! `stream: true` answers as server-sent events.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::response::{json_response, ApiError, Body};
use super::Shared;
use crate::openai::{Message, Stop, Tool, ToolCall};
use crate::router::{
    Backend, CompletionError, CompletionRequest, Completions, RouteInfo, Summary, ToolRun, Update,
};
use crate::telemetry::Metrics;

/// Fields both completion APIs share.
#[derive(Debug, Deserialize)]
struct Common {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<Message>,
    #[serde(default, alias = "max_completion_tokens")]
    max_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    repetition_penalty: Option<f32>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stop: Stop,
    #[serde(default)]
    stream: bool,
    /// `local` or `cloud` to insist on one backend.
    #[serde(default)]
    backend: Option<Backend>,
    /// When the cloud is needed and cannot be reached, queue the request (202 with an id)
    /// instead of failing.
    #[serde(default)]
    defer: bool,
}

/// What only `/v1/chat/completions` has (read from the same body as [`Common`]).
#[derive(Debug, Deserialize)]
struct ChatBody {
    #[serde(default)]
    tools: Vec<Tool>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// What only `/v1/mcp/completions` has (read from the same body as [`Common`]).
#[derive(Debug, Deserialize)]
struct McpBody {
    /// `true` or `"all"` for every MCP tool, a list of names for some; absent offers none.
    #[serde(default)]
    tools: Option<Value>,
    #[serde(default)]
    max_tool_rounds: Option<u32>,
}

impl Common {
    fn into_request(self) -> Result<CompletionRequest, ApiError> {
        if self.messages.is_empty() {
            return Err(bad_request("messages must hold at least one message"));
        }
        if let Some(t) = self.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
            return Err(bad_request(format!(
                "temperature must be between 0 and 2, not {t}"
            )));
        }
        if let Some(p) = self.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
            return Err(bad_request(format!("top_p must be in (0, 1], not {p}")));
        }
        if let Some(r) = self
            .repetition_penalty
            .filter(|r| !(*r > 0.0 && *r <= 10.0))
        {
            return Err(bad_request(format!(
                "repetition_penalty must be in (0, 10], not {r}"
            )));
        }
        if self.max_tokens == Some(0) {
            return Err(bad_request("max_tokens must be at least 1"));
        }
        if self.defer && self.backend == Some(Backend::Local) {
            return Err(bad_request(
                "defer waits for the cloud; it cannot be combined with backend \"local\"",
            ));
        }
        Ok(CompletionRequest {
            model: self.model,
            messages: self.messages,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            repetition_penalty: self.repetition_penalty,
            seed: self.seed,
            stop: self.stop.to_vec(),
            backend: self.backend,
            ..CompletionRequest::default()
        })
    }
}

/// The two response formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub(super) enum Api {
    #[serde(rename = "openai")]
    OpenAi {
        include_usage: bool,
    },
    Mcp,
}

/// `POST /v1/chat/completions`.
pub(super) async fn chat_completions(
    shared: &Shared,
    body: &Bytes,
    deadline: Instant,
) -> Response<Body> {
    let (common, body): (Common, ChatBody) = match parse(body).and_then(|c| Ok((c, parse(body)?))) {
        Ok(parsed) => parsed,
        Err(e) => return e.into_response(),
    };
    if body.n.is_some_and(|n| n != 1) {
        return bad_request("n must be 1: the gateway produces one choice").into_response();
    }
    let api = Api::OpenAi {
        include_usage: body.stream_options.is_some_and(|o| o.include_usage),
    };
    let (stream, defer) = (common.stream, common.defer);
    let request = match common.into_request() {
        Ok(request) => CompletionRequest {
            tools: body.tools,
            ..request
        },
        Err(e) => return e.into_response(),
    };
    complete(shared, request, api, stream, defer, deadline).await
}

/// `POST /v1/mcp/completions`.
pub(super) async fn mcp_completions(
    shared: &Shared,
    body: &Bytes,
    deadline: Instant,
) -> Response<Body> {
    let (common, body): (Common, McpBody) = match parse(body).and_then(|c| Ok((c, parse(body)?))) {
        Ok(parsed) => parsed,
        Err(e) => return e.into_response(),
    };
    let mcp_tools = match body.tools {
        None | Some(Value::Bool(false)) | Some(Value::Null) => None,
        Some(Value::Bool(true)) => Some(Vec::new()),
        Some(Value::String(s)) if s == "all" => Some(Vec::new()),
        Some(Value::Array(names)) => {
            let names: Option<Vec<String>> = names
                .iter()
                .map(|n| n.as_str().map(str::to_owned))
                .collect();
            match names {
                Some(names) if !names.is_empty() => Some(names),
                _ => {
                    return bad_request(
                        "tools must be true, \"all\" or a non-empty list of MCP tool names",
                    )
                    .into_response()
                }
            }
        }
        Some(_) => {
            return bad_request("tools must be true, \"all\" or a list of MCP tool names")
                .into_response()
        }
    };
    if common.defer && mcp_tools.is_some() {
        return bad_request(
            "defer cannot be combined with MCP tools: they would run on the device hours later",
        )
        .into_response();
    }
    let (stream, defer) = (common.stream, common.defer);
    let request = match common.into_request() {
        Ok(request) => CompletionRequest {
            mcp_tools,
            max_tool_rounds: body.max_tool_rounds,
            ..request
        },
        Err(e) => return e.into_response(),
    };
    complete(shared, request, Api::Mcp, stream, defer, deadline).await
}

/// `GET /v1/models`.
pub(super) fn models(shared: &Shared) -> Response<Body> {
    let mut data = Vec::new();
    if let Some(model) = shared.completions.local() {
        let info = model.info();
        data.push(json!({
            "id": info.name,
            "object": "model",
            "created": 0,
            "owned_by": "local",
            "mcp_edge": {
                "backend": "local",
                "architecture": info.architecture,
                "quantization": info.quantization,
                "context_length": info.context_length,
                "estimated_memory_mb": info.memory.total_mb(),
                "chat_template": info.chat_template,
                "tokenizer": info.tokenizer,
            }
        }));
    }
    if let Some(cloud) = shared.completions.cloud() {
        data.push(json!({
            "id": cloud.model().unwrap_or("cloud"),
            "object": "model",
            "created": 0,
            "owned_by": "cloud",
            "mcp_edge": { "backend": "cloud", "circuit": cloud.circuit() }
        }));
    }
    json_response(StatusCode::OK, &json!({ "object": "list", "data": data }))
}

/// Serves a completion. With `defer`, a request the cloud cannot take now (and nothing else
/// answered) is queued for the next sync and answered 202.
async fn complete(
    shared: &Shared,
    request: CompletionRequest,
    api: Api,
    stream: bool,
    defer: bool,
    deadline: Instant,
) -> Response<Body> {
    let deferrable = (defer && shared.completions.cloud().is_some()).then(|| request.clone());
    let mut updates = shared.completions.start(request);
    // Nothing is sent until a backend has produced its first piece (or failed), so that
    // errors keep their status code and the answer's headers can name the backend.
    let first = match tokio::time::timeout_at(deadline, updates.recv()).await {
        Ok(Some(Update::Started(route))) => route,
        Ok(Some(Update::Failed(CompletionError::Unavailable(why)))) if deferrable.is_some() => {
            let request = deferrable.unwrap_or_default();
            return super::queue::defer(shared, request, api, &why).await;
        }
        Ok(Some(Update::Failed(e))) => {
            observe(&shared.metrics, &[], None);
            return completion_error(e);
        }
        Ok(_) => {
            return completion_error(CompletionError::Failed("the completion ended early".into()))
        }
        Err(_) => return timed_out(),
    };
    let id = next_id(api);
    let backend = first.backend;
    if backend == Backend::Cloud {
        shared.queue.link_is_up();
    }
    let mut response = if stream {
        sse(
            Stream::new(id, api, first, Arc::clone(&shared.metrics)),
            updates,
        )
    } else {
        let mut transcript = Transcript::new(first);
        loop {
            match tokio::time::timeout_at(deadline, updates.recv()).await {
                Ok(Some(Update::Done(summary))) => {
                    observe(&shared.metrics, &transcript.routes, Some(&summary));
                    break json_response(StatusCode::OK, &transcript.finish(&id, api, summary));
                }
                Ok(Some(Update::Failed(e))) => {
                    observe(&shared.metrics, &transcript.routes, None);
                    break completion_error(e);
                }
                Ok(Some(update)) => transcript.add(update),
                Ok(None) => {
                    break completion_error(CompletionError::Failed(
                        "the completion ended early".into(),
                    ))
                }
                Err(_) => break timed_out(),
            }
        }
    };
    response.headers_mut().insert(
        "x-mcp-edge-backend",
        HeaderValue::from_static(backend.as_str()),
    );
    response
}

/// Runs a completion to its end without a deadline of its own (the backends have theirs)
/// and returns the answer as `api` formats it: how the offline queue replays one.
pub(super) async fn run_to_end(
    completions: &Completions,
    metrics: &Metrics,
    request: CompletionRequest,
    api: Api,
) -> Result<Value, CompletionError> {
    let mut updates = completions.start(request);
    let mut transcript: Option<Transcript> = None;
    while let Some(update) = updates.recv().await {
        match (update, &mut transcript) {
            (Update::Done(summary), Some(t)) => {
                observe(metrics, &t.routes, Some(&summary));
                let t = transcript
                    .take()
                    .map(|t| t.finish(&next_id(api), api, summary));
                return t.ok_or_else(|| CompletionError::Failed("no answer".into()));
            }
            (Update::Failed(e), t) => {
                observe(metrics, t.as_ref().map_or(&[], |t| &t.routes), None);
                return Err(e);
            }
            (Update::Started(route), None) => transcript = Some(Transcript::new(route)),
            (update, Some(t)) => t.add(update),
            (_, None) => {}
        }
    }
    Err(CompletionError::Failed("the completion ended early".into()))
}

/// Counts a finished completion (`summary` is `None` for a failed one) and its fallbacks.
fn observe(metrics: &Metrics, routes: &[RouteInfo], summary: Option<&Summary>) {
    for route in routes.iter().filter(|r| r.fallback) {
        metrics.completion_fallback(route.backend.as_str());
    }
    let backend = routes.last().map_or("none", |r| r.backend.as_str());
    match summary {
        Some(summary) => {
            let outcome = match summary.finish_reason.as_str() {
                "stop" => "stop",
                "length" => "length",
                "tool_calls" => "tool_calls",
                _ => "other",
            };
            let usage = summary.usage;
            metrics.completion(
                backend,
                outcome,
                (usage.prompt_tokens, usage.completion_tokens),
            );
        }
        None => metrics.completion(backend, "error", (0, 0)),
    }
}

/// A completion's updates gathered into one answer.
#[derive(Debug)]
struct Transcript {
    routes: Vec<RouteInfo>,
    /// Text of the current (in the end, the last) turn.
    text: String,
    tool_runs: Vec<ToolRun>,
}

impl Transcript {
    fn new(first: RouteInfo) -> Self {
        Self {
            routes: vec![first],
            text: String::new(),
            tool_runs: Vec::new(),
        }
    }

    fn add(&mut self, update: Update) {
        match update {
            Update::Started(route) => {
                self.routes.push(route);
                self.text.clear();
            }
            Update::Text(text) => self.text.push_str(&text),
            Update::ToolRun(run) => self.tool_runs.push(run),
            Update::Done(_) | Update::Failed(_) => {}
        }
    }

    fn finish(self, id: &str, api: Api, summary: Summary) -> Value {
        let last = self
            .routes
            .last()
            .cloned()
            .unwrap_or_else(|| self.routes[0].clone());
        let edge = edge(&self.routes);
        match api {
            Api::OpenAi { .. } => {
                let mut message = json!({ "role": "assistant", "content": self.text });
                if !summary.tool_calls.is_empty() {
                    message["tool_calls"] = json!(summary.tool_calls);
                }
                json!({
                    "id": id,
                    "object": "chat.completion",
                    "created": now(),
                    "model": last.model,
                    "choices": [{ "index": 0, "message": message, "finish_reason": summary.finish_reason }],
                    "usage": summary.usage,
                    "mcp_edge": edge,
                })
            }
            Api::Mcp => json!({
                "id": id,
                "object": "mcp.completion",
                "created": now(),
                "model": last.model,
                "message": { "role": "assistant", "content": self.text },
                "finish_reason": summary.finish_reason,
                "tool_runs": self.tool_runs.iter().map(tool_run).collect::<Vec<_>>(),
                "pending_tool_calls": summary.tool_calls,
                "tool_rounds": summary.tool_rounds,
                "usage": summary.usage,
                "mcp_edge": edge,
            }),
        }
    }
}

/// `mcp_edge`: which backend answered (the last turn's) and why, and every turn's route.
fn edge(routes: &[RouteInfo]) -> Value {
    let last = routes.last();
    json!({
        "backend": last.map(|r| r.backend),
        "reason": last.map(|r| r.reason.clone()),
        "routes": routes,
    })
}

fn tool_run(run: &ToolRun) -> Value {
    json!({
        "id": run.call.id,
        "name": run.call.function.name,
        "arguments": serde_json::from_str::<Value>(&run.call.function.arguments).unwrap_or(Value::Null),
        "result": run.outcome.content,
        "is_error": run.outcome.is_error,
    })
}

/// Turns updates into server-sent events in the API's format.
#[derive(Debug)]
struct Stream {
    id: String,
    api: Api,
    created: u64,
    routes: Vec<RouteInfo>,
    metrics: Arc<Metrics>,
}

impl Stream {
    fn new(id: String, api: Api, first: RouteInfo, metrics: Arc<Metrics>) -> Self {
        Self {
            id,
            api,
            created: now(),
            routes: vec![first],
            metrics,
        }
    }

    /// The events that open the stream.
    fn opening(&self) -> Vec<String> {
        match self.api {
            Api::OpenAi { .. } => {
                vec![self.chunk(json!({ "role": "assistant", "content": "" }), None, true)]
            }
            Api::Mcp => vec![event("route", &json!(self.routes[0]))],
        }
    }

    /// The events for one update; `None` ends the stream after them.
    fn events(&mut self, update: Update) -> (Vec<String>, bool) {
        match &update {
            Update::Done(summary) => observe(&self.metrics, &self.routes, Some(summary)),
            Update::Failed(_) => observe(&self.metrics, &self.routes, None),
            _ => {}
        }
        match (self.api, update) {
            (_, Update::Failed(e)) => (vec![event("error", &error_body(&e))], true),
            (Api::OpenAi { .. }, Update::Started(route)) => {
                self.routes.push(route);
                (Vec::new(), false)
            }
            (Api::OpenAi { .. }, Update::Text(text)) => (
                vec![self.chunk(json!({ "content": text }), None, false)],
                false,
            ),
            (Api::OpenAi { .. }, Update::ToolRun(_)) => (Vec::new(), false),
            (Api::OpenAi { include_usage }, Update::Done(summary)) => {
                let delta = if summary.tool_calls.is_empty() {
                    json!({})
                } else {
                    json!({ "tool_calls": indexed(&summary.tool_calls) })
                };
                let mut out = vec![self.chunk(delta, Some(&summary.finish_reason), true)];
                if include_usage {
                    out.push(data(&json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model(), "choices": [], "usage": summary.usage,
                    })));
                }
                out.push("data: [DONE]\n\n".into());
                (out, true)
            }
            (Api::Mcp, Update::Started(route)) => {
                let out = vec![event("route", &json!(route))];
                self.routes.push(route);
                (out, false)
            }
            (Api::Mcp, Update::Text(text)) => {
                (vec![event("text", &json!({ "delta": text }))], false)
            }
            (Api::Mcp, Update::ToolRun(run)) => (vec![event("tool", &tool_run(&run))], false),
            (Api::Mcp, Update::Done(summary)) => {
                let done = json!({
                    "id": self.id,
                    "finish_reason": summary.finish_reason,
                    "pending_tool_calls": summary.tool_calls,
                    "tool_rounds": summary.tool_rounds,
                    "usage": summary.usage,
                    "mcp_edge": edge(&self.routes),
                });
                (vec![event("done", &done)], true)
            }
        }
    }

    fn model(&self) -> String {
        self.routes
            .last()
            .map(|r| r.model.clone())
            .unwrap_or_default()
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>, with_edge: bool) -> String {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model(),
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish_reason }],
        });
        if with_edge {
            chunk["mcp_edge"] = edge(&self.routes);
        }
        data(&chunk)
    }
}

/// Tool calls as stream deltas carry them: with their position.
fn indexed(calls: &[ToolCall]) -> Vec<Value> {
    calls
        .iter()
        .enumerate()
        .map(|(index, call)| {
            let mut value = json!(call);
            value["index"] = json!(index);
            value
        })
        .collect()
}

/// The answer as server-sent events. The events are produced by a task of their own, which
/// stops (and so cancels the completion) when the client goes away.
fn sse(mut stream: Stream, mut updates: mpsc::Receiver<Update>) -> Response<Body> {
    let (sender, receiver) = mpsc::channel::<String>(32);
    tokio::spawn(async move {
        for text in stream.opening() {
            if sender.send(text).await.is_err() {
                return;
            }
        }
        while let Some(update) = updates.recv().await {
            let (events, end) = stream.events(update);
            for text in events {
                if sender.send(text).await.is_err() {
                    return;
                }
            }
            if end {
                return;
            }
        }
    });
    let body = futures::stream::unfold(receiver, |mut receiver| async move {
        let text = receiver.recv().await?;
        Some((Ok(Frame::data(Bytes::from(text))), receiver))
    });
    let mut response = Response::new(StreamBody::new(body).boxed());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn event(name: &str, value: &Value) -> String {
    format!("event: {name}\ndata: {value}\n\n")
}

fn data(value: &Value) -> String {
    format!("data: {value}\n\n")
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("the body is not valid JSON: {inner}")
        } else if path == "." {
            format!("invalid request: {inner}")
        } else {
            format!("invalid request at {path}: {inner}")
        };
        bad_request(message)
    })
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

fn error_body(error: &CompletionError) -> Value {
    let (status, code) = status_of(error);
    json!({ "error": { "status": status.as_u16(), "code": code, "message": error.to_string() } })
}

fn status_of(error: &CompletionError) -> (StatusCode, &'static str) {
    match error {
        CompletionError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
        CompletionError::Busy { .. } => (StatusCode::TOO_MANY_REQUESTS, "model_busy"),
        CompletionError::Unavailable(_) | CompletionError::NoBackend(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "no_model_available")
        }
        CompletionError::Failed(_) => (StatusCode::BAD_GATEWAY, "model_failed"),
        CompletionError::Refused(_) => (StatusCode::BAD_GATEWAY, "cloud_refused"),
    }
}

fn completion_error(error: CompletionError) -> Response<Body> {
    let (status, code) = status_of(&error);
    let mut response = ApiError::new(status, code, error.to_string()).into_response();
    if let CompletionError::Busy { retry_after, .. } = error {
        let seconds = retry_after.as_secs().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

fn timed_out() -> Response<Body> {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "timeout",
        "the completion did not finish within gateway.request_timeout_ms; ask for fewer tokens or use stream: true",
    )
    .into_response()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `chatcmpl-…` or `mcpc-…`: unique within the process, and across restarts by the time.
fn next_id(api: Api) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let prefix = match api {
        Api::OpenAi { .. } => "chatcmpl",
        Api::Mcp => "mcpc",
    };
    format!("{prefix}-{:x}{nanos:08x}{n:x}", now())
}
