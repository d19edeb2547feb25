//! The cloud side of hybrid execution: an OpenAI-compatible chat endpoint over rustls (plain
//! HTTP only in a build without TLS), with a timeout on every wait, retries with backoff for
//! failures that are safe to repeat, and a circuit breaker so a dead link costs nothing once it
//! is known to be dead.

mod breaker;
mod sse;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::{ModelsConfig, Secret};
use crate::openai::{Message, Tool, ToolCall, Usage};
pub use breaker::Breaker;

/// Longest pause between two retries, whatever `Retry-After` says.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// First pause between retries; doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Why the cloud did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    /// No cloud endpoint is configured.
    #[error("no cloud endpoint is configured (models.cloud_endpoint)")]
    NotConfigured,
    /// The circuit breaker is open after repeated failures.
    #[error("the cloud endpoint failed repeatedly; not trying again for {retry_in_ms} ms")]
    CircuitOpen { retry_in_ms: u64 },
    /// The endpoint could not be reached, or stopped answering.
    #[error("cannot reach the cloud endpoint: {0}")]
    Unreachable(String),
    /// The endpoint answered with an error status.
    #[error("the cloud endpoint answered {status}: {message}")]
    Status { status: u16, message: String },
    /// The answer was not the OpenAI format.
    #[error("the cloud endpoint's answer is not understood: {0}")]
    Protocol(String),
}

/// What the cloud model is asked.
#[derive(Debug, Clone, Default)]
pub struct CloudRequest {
    /// Model name from the API request; `models.cloud_model` takes precedence when set.
    pub model: Option<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    /// Sent as the `Idempotency-Key` header, so that an endpoint that sees the same request
    /// twice (a retry, a replay from the offline queue) can answer it once.
    pub idempotency_key: Option<String>,
}

/// What arrives from the cloud as its answer streams in.
#[derive(Debug, Clone, PartialEq)]
pub enum CloudEvent {
    Text(String),
    /// The end: the tool calls the model asked for (complete), why it stopped, token counts.
    Done {
        tool_calls: Vec<ToolCall>,
        finish_reason: String,
        usage: Usage,
        model: String,
    },
}

/// Client for one OpenAI-compatible endpoint.
#[derive(Debug)]
pub struct CloudClient {
    http: reqwest::Client,
    /// `{cloud_endpoint}/chat/completions`.
    url: String,
    api_key: Option<Secret>,
    model: Option<String>,
    timeout: Duration,
    retries: u32,
    breaker: Arc<Breaker>,
}

impl CloudClient {
    /// The client for `[models]`, or `None` when no endpoint is configured.
    pub fn from_config(config: &ModelsConfig) -> Result<Option<Self>, String> {
        let Some(endpoint) = &config.cloud_endpoint else {
            return Ok(None);
        };
        crate::tls::install_client_provider();
        let timeout = Duration::from_millis(config.cloud_timeout_ms);
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("mcp-edge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the cloud client: {e}"))?;
        Ok(Some(Self {
            http,
            url: format!("{}/chat/completions", endpoint.trim_end_matches('/')),
            api_key: config
                .cloud_api_key
                .clone()
                .filter(|k| !k.expose().is_empty()),
            model: config.cloud_model.clone(),
            timeout,
            retries: config.cloud_retries,
            breaker: Arc::new(Breaker::new(
                config.circuit_breaker_failures,
                Duration::from_millis(config.circuit_breaker_cooldown_ms),
            )),
        }))
    }

    /// `models.cloud_model`, when set.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// `closed`, `open` or `half_open`.
    pub fn circuit(&self) -> &'static str {
        self.breaker.state()
    }

    /// Whether the circuit lets requests through right now (without taking the probe).
    pub fn available(&self) -> bool {
        self.breaker.state() != "open"
    }

    /// Sends `request` and returns its answer as a stream once the endpoint has accepted it
    /// (status 200). Failures before that are retried when repeating is safe.
    pub async fn chat(
        &self,
        request: &CloudRequest,
        cancel: CancellationToken,
    ) -> Result<mpsc::Receiver<Result<CloudEvent, CloudError>>, CloudError> {
        if let Err(wait) = self.breaker.permit() {
            return Err(CloudError::CircuitOpen {
                retry_in_ms: wait.as_millis() as u64,
            });
        }
        let body = self.body(request);
        let key = request.idempotency_key.as_deref();
        let response = match self.send_with_retries(&body, key, &cancel).await {
            Ok(response) => response,
            Err(e) => {
                self.breaker.failure();
                return Err(e);
            }
        };
        let (sender, receiver) = mpsc::channel(64);
        let stream = AnswerStream {
            timeout: self.timeout,
            sender,
            cancel,
        };
        let breaker = Arc::clone(&self.breaker);
        tokio::spawn(async move {
            match stream.relay(response).await {
                Relay::Finished => breaker.success(),
                Relay::Failed => breaker.failure(),
                Relay::Cancelled => {}
            }
        });
        Ok(receiver)
    }

    fn body(&self, request: &CloudRequest) -> Value {
        let mut body = json!({
            "model": self.model.clone().or_else(|| request.model.clone()).unwrap_or_else(|| "default".into()),
            "messages": request.messages,
            "stream": true,
            "stream_options": { "include_usage": true },
        });
        let fields = [
            ("max_tokens", request.max_tokens.map(Value::from)),
            ("temperature", request.temperature.map(Value::from)),
            ("top_p", request.top_p.map(Value::from)),
            ("seed", request.seed.map(Value::from)),
            (
                "stop",
                (!request.stop.is_empty()).then(|| json!(request.stop)),
            ),
            (
                "tools",
                (!request.tools.is_empty()).then(|| json!(request.tools)),
            ),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                body[key] = value;
            }
        }
        body
    }

    async fn send_with_retries(
        &self,
        body: &Value,
        idempotency_key: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<reqwest::Response, CloudError> {
        let mut attempt = 0;
        loop {
            let (error, retry_after) = match self.send(body, idempotency_key, cancel).await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let message = error_message(response).await;
                    let error = CloudError::Status { status, message };
                    if !matches!(status, 408 | 429 | 502 | 503 | 504) {
                        return Err(error);
                    }
                    (error, retry_after)
                }
                Err(error) => (error, None),
            };
            if attempt >= self.retries || cancel.is_cancelled() {
                return Err(error);
            }
            let backoff = retry_after
                .unwrap_or(FIRST_BACKOFF * 2u32.pow(attempt))
                .min(MAX_BACKOFF);
            attempt += 1;
            warn!(attempt, backoff_ms = backoff.as_millis() as u64, error = %error, "cloud request failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = cancel.cancelled() => return Err(error),
            }
        }
    }

    async fn send(
        &self,
        body: &Value,
        idempotency_key: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<reqwest::Response, CloudError> {
        let mut request = self.http.post(&self.url).json(body);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        tokio::select! {
            sent = tokio::time::timeout(self.timeout, request.send()) => match sent {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(e)) => Err(CloudError::Unreachable(describe(&e))),
                Err(_) => Err(CloudError::Unreachable(format!(
                    "no answer within {} ms (models.cloud_timeout_ms)",
                    self.timeout.as_millis()
                ))),
            },
            _ = cancel.cancelled() => Err(CloudError::Unreachable("cancelled".into())),
        }
    }
}

/// The error text of a failed response, shortened; an API key never appears in it because the
/// gateway never sends one in the body.
async fn error_message(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or(text);
    message.chars().take(300).collect()
}

/// A reqwest error without the URL's query (which could carry a credential).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_connect() {
        "connection failed"
    } else if error.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(error);
    let mut detail = String::new();
    while let Some(e) = source {
        detail = e.to_string();
        source = e.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

enum Relay {
    Finished,
    Failed,
    Cancelled,
}

/// Reads the server-sent events of one answer and hands its pieces on.
struct AnswerStream {
    timeout: Duration,
    sender: mpsc::Sender<Result<CloudEvent, CloudError>>,
    cancel: CancellationToken,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Delta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Default, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCallDelta>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: usize,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: FunctionDelta,
}

#[derive(Default, Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

impl AnswerStream {
    /// Reads the answer to its end, the caller going away, or a failure.
    async fn relay(self, response: reqwest::Response) -> Relay {
        let is_sse = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            return self.relay_whole(response).await;
        }
        let mut body = response.bytes_stream();
        let mut parser = sse::Parser::default();
        let mut state = Answer::default();
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(self.timeout, body.next()) => next,
                _ = self.cancel.cancelled() => return Relay::Cancelled,
            };
            let bytes = match next {
                Ok(Some(Ok(bytes))) => bytes,
                Ok(Some(Err(e))) => return self.fail(CloudError::Unreachable(describe(&e))).await,
                Ok(None) => {
                    // Some servers end the stream without [DONE]; what arrived is the answer.
                    return self.finish(state).await;
                }
                Err(_) => {
                    return self
                        .fail(CloudError::Unreachable(format!(
                            "the answer stalled for {} ms",
                            self.timeout.as_millis()
                        )))
                        .await
                }
            };
            for data in parser.push(&bytes) {
                if data == "[DONE]" {
                    return self.finish(state).await;
                }
                let chunk: Chunk = match serde_json::from_str(&data) {
                    Ok(chunk) => chunk,
                    Err(e) => return self.fail(CloudError::Protocol(e.to_string())).await,
                };
                if let Some(text) = state.absorb(chunk) {
                    if self.sender.send(Ok(CloudEvent::Text(text))).await.is_err() {
                        return Relay::Cancelled;
                    }
                }
            }
        }
    }

    /// An endpoint that ignored `stream: true` and sent one JSON answer.
    async fn relay_whole(self, response: reqwest::Response) -> Relay {
        #[derive(Deserialize)]
        struct Whole {
            #[serde(default)]
            model: String,
            choices: Vec<WholeChoice>,
            #[serde(default)]
            usage: Option<Usage>,
        }
        #[derive(Deserialize)]
        struct WholeChoice {
            message: Message,
            #[serde(default)]
            finish_reason: Option<String>,
        }
        let whole = match tokio::time::timeout(self.timeout, response.json::<Whole>()).await {
            Ok(Ok(whole)) => whole,
            Ok(Err(e)) => return self.fail(CloudError::Protocol(describe(&e))).await,
            Err(_) => {
                return self
                    .fail(CloudError::Unreachable("the answer stalled".into()))
                    .await
            }
        };
        let Some(choice) = whole.choices.into_iter().next() else {
            return self
                .fail(CloudError::Protocol("no choices in the answer".into()))
                .await;
        };
        if let Some(text) = choice.message.content.filter(|t| !t.is_empty()) {
            let _ = self.sender.send(Ok(CloudEvent::Text(text))).await;
        }
        let done = CloudEvent::Done {
            tool_calls: choice.message.tool_calls,
            finish_reason: choice.finish_reason.unwrap_or_else(|| "stop".into()),
            usage: whole.usage.unwrap_or_default(),
            model: whole.model,
        };
        let _ = self.sender.send(Ok(done)).await;
        Relay::Finished
    }

    async fn finish(&self, answer: Answer) -> Relay {
        let _ = self.sender.send(Ok(answer.done())).await;
        Relay::Finished
    }

    async fn fail(&self, error: CloudError) -> Relay {
        debug!(%error, "cloud answer broken off");
        let _ = self.sender.send(Err(error)).await;
        Relay::Failed
    }
}

/// What the chunks of one answer add up to.
#[derive(Default)]
struct Answer {
    model: String,
    finish_reason: Option<String>,
    usage: Usage,
    tool_calls: Vec<ToolCall>,
}

impl Answer {
    /// Takes one chunk in; returns its text, if any.
    fn absorb(&mut self, chunk: Chunk) -> Option<String> {
        if !chunk.model.is_empty() {
            self.model = chunk.model;
        }
        if let Some(usage) = chunk.usage {
            self.usage = usage;
        }
        let choice = chunk.choices.into_iter().next()?;
        if choice.finish_reason.is_some() {
            self.finish_reason = choice.finish_reason;
        }
        for call in choice.delta.tool_calls {
            while self.tool_calls.len() <= call.index {
                self.tool_calls.push(ToolCall {
                    id: String::new(),
                    kind: "function".into(),
                    function: crate::openai::FunctionCall {
                        name: String::new(),
                        arguments: String::new(),
                    },
                });
            }
            let slot = &mut self.tool_calls[call.index];
            if let Some(id) = call.id {
                slot.id = id;
            }
            if let Some(name) = call.function.name {
                slot.function.name.push_str(&name);
            }
            if let Some(arguments) = call.function.arguments {
                slot.function.arguments.push_str(&arguments);
            }
        }
        choice.delta.content.filter(|t| !t.is_empty())
    }

    fn done(self) -> CloudEvent {
        let finish_reason = self.finish_reason.unwrap_or_else(|| {
            if self.tool_calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            }
            .into()
        });
        CloudEvent::Done {
            tool_calls: self.tool_calls,
            finish_reason,
            usage: self.usage,
            model: self.model,
        }
    }
}
