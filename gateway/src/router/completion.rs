//! One completion, start to end: each turn is routed (local or cloud), the first choice must
//! show its first token in time or the fallback takes over, text streams out as it arrives, and
//! tool calls on the gateway's MCP tools are run and fed back for a bounded number of rounds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::local_tools;
use super::{Backend, CloudState, LocalState, ModelRouter, RouteInputs};
use crate::cloud::{CloudClient, CloudError, CloudEvent, CloudRequest};
use crate::inference::{
    Event, FinishReason, GenerationOptions, LocalModel, SamplingParams, SubmitError,
};
use crate::openai::{Message, Tool, ToolCall, Usage};

/// A completion as the HTTP APIs hand it over (and as the offline queue stores it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// The model the caller named (sent on to the cloud; informational for the local model).
    pub model: Option<String>,
    pub messages: Vec<Message>,
    /// Functions the caller defines; the model's calls to them are returned to the caller.
    pub tools: Vec<Tool>,
    /// The gateway's MCP tools to offer, which the gateway runs itself: `None` offers none,
    /// an empty list offers all of them.
    pub mcp_tools: Option<Vec<String>>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    pub repetition_penalty: Option<f32>,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    /// The backend the caller insists on.
    pub backend: Option<Backend>,
    /// Fewer tool rounds than `models.max_tool_rounds`.
    pub max_tool_rounds: Option<u32>,
    /// Sent to the cloud as `Idempotency-Key` (the offline queue's entry id on a replay).
    #[serde(skip)]
    pub idempotency_key: Option<String>,
}

/// Which backend answers a turn, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteInfo {
    pub backend: Backend,
    pub model: String,
    pub reason: String,
    /// The first choice failed or was too slow and this backend took over.
    pub fallback: bool,
}

/// The result of one MCP tool call made for the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolOutcome {
    pub content: String,
    pub is_error: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolRun {
    pub call: ToolCall,
    pub outcome: ToolOutcome,
}

/// How the completion ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// `stop`, `length` or `tool_calls`.
    pub finish_reason: String,
    pub usage: Usage,
    /// Calls for the caller to run (its own tools, or MCP tools past the last round).
    pub tool_calls: Vec<ToolCall>,
    /// Rounds of MCP tool calls the gateway ran.
    pub tool_rounds: usize,
}

/// What a completion reports, in order: for each turn `Started` then its text; `ToolRun`s
/// between turns; finally one `Done` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Started(RouteInfo),
    Text(String),
    ToolRun(ToolRun),
    Done(Summary),
    Failed(CompletionError),
}

/// Why a completion could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompletionError {
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The local model's queue is full and nothing else may answer.
    #[error("{message}")]
    Busy {
        message: String,
        retry_after: Duration,
    },
    /// No backend may take the request at all (none configured, or the policy forbids the
    /// one that exists): waiting would not help.
    #[error("{0}")]
    NoBackend(String),
    /// The backends that may answer cannot right now.
    #[error("{0}")]
    Unavailable(String),
    /// The cloud refused the request itself (a 4xx other than 401, 403, 408 and 429):
    /// sending it again cannot help.
    #[error("{0}")]
    Refused(String),
    /// A backend failed after it had started answering.
    #[error("{0}")]
    Failed(String),
}

/// The gateway's MCP tools, as the completion APIs use them.
pub trait ToolHost: Send + Sync + std::fmt::Debug {
    /// Every tool the gateway offers, as function definitions.
    fn tools(&self) -> Vec<Tool>;
    /// Runs one tool. Failures are results too (`is_error`), so the model can read them.
    fn call(
        &self,
        name: String,
        arguments: serde_json::Map<String, Value>,
    ) -> BoxFuture<'static, ToolOutcome>;
}

/// Serves completions from the local model and the cloud.
#[derive(Debug, Clone)]
pub struct Completions {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    local: Option<LocalModel>,
    cloud: Option<CloudClient>,
    router: Box<dyn ModelRouter>,
    tools: Option<Arc<dyn ToolHost>>,
    /// `models.max_tokens`: default and ceiling.
    max_tokens: u32,
    max_tool_rounds: u32,
    /// False while the power governor keeps the local model off.
    local_gate: Arc<AtomicBool>,
}

/// One turn's result.
struct Turn {
    text: String,
    tool_calls: Vec<ToolCall>,
    finish_reason: String,
    usage: Usage,
}

impl Completions {
    pub fn new(
        local: Option<LocalModel>,
        cloud: Option<CloudClient>,
        router: Box<dyn ModelRouter>,
        tools: Option<Arc<dyn ToolHost>>,
        max_tokens: u32,
        max_tool_rounds: u32,
        local_gate: Arc<AtomicBool>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                local,
                cloud,
                router,
                tools,
                max_tokens,
                max_tool_rounds,
                local_gate,
            }),
        }
    }

    pub fn local(&self) -> Option<&LocalModel> {
        self.inner.local.as_ref()
    }

    pub fn cloud(&self) -> Option<&CloudClient> {
        self.inner.cloud.as_ref()
    }

    /// Starts a completion; its updates arrive on the returned channel. Dropping the receiver
    /// cancels it.
    pub fn start(&self, request: CompletionRequest) -> mpsc::Receiver<Update> {
        let (sender, receiver) = mpsc::channel(64);
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let cancel = CancellationToken::new();
            let _cancel_on_exit = cancel.clone().drop_guard();
            if let Err(e) = inner.run(request, &sender, &cancel).await {
                let _ = sender.send(Update::Failed(e)).await;
            }
        });
        receiver
    }
}

/// The caller went away; nothing more to report.
const GONE: CompletionError = CompletionError::Failed(String::new());

impl Inner {
    async fn run(
        &self,
        mut request: CompletionRequest,
        updates: &mpsc::Sender<Update>,
        cancel: &CancellationToken,
    ) -> Result<(), CompletionError> {
        let mcp_tools = self.mcp_tools(&request)?;
        let mut offered = request.tools.clone();
        offered.extend(mcp_tools.iter().cloned());
        let max_rounds = request
            .max_tool_rounds
            .unwrap_or(self.max_tool_rounds)
            .min(self.max_tool_rounds) as usize;
        let mut usage = Usage::default();
        let mut round = 0;
        loop {
            let turn = self
                .turn(&request, &offered, round, updates, cancel)
                .await?;
            usage.add(turn.usage);
            let ours = !turn.tool_calls.is_empty()
                && turn
                    .tool_calls
                    .iter()
                    .all(|c| mcp_tools.iter().any(|t| t.function.name == c.function.name));
            if !ours || round == max_rounds {
                let summary = Summary {
                    finish_reason: turn.finish_reason,
                    usage,
                    tool_calls: turn.tool_calls,
                    tool_rounds: round,
                };
                return send(updates, Update::Done(summary)).await;
            }
            round += 1;
            let mut assistant = Message::text("assistant", turn.text);
            assistant.tool_calls = turn.tool_calls.clone();
            request.messages.push(assistant);
            for call in turn.tool_calls {
                let outcome = self.call_tool(&call, cancel).await;
                let mut answer = Message::text("tool", outcome.content.clone());
                answer.tool_call_id = Some(call.id.clone());
                request.messages.push(answer);
                send(updates, Update::ToolRun(ToolRun { call, outcome })).await?;
            }
        }
    }

    /// The MCP tools the request asked for, as function definitions.
    fn mcp_tools(&self, request: &CompletionRequest) -> Result<Vec<Tool>, CompletionError> {
        let Some(wanted) = &request.mcp_tools else {
            return Ok(Vec::new());
        };
        let Some(host) = &self.tools else {
            return Err(CompletionError::Invalid(
                "MCP tools are not available to completions here".into(),
            ));
        };
        let all = host.tools();
        if wanted.is_empty() {
            return Ok(all);
        }
        wanted
            .iter()
            .map(|name| {
                all.iter()
                    .find(|t| &t.function.name == name)
                    .cloned()
                    .ok_or_else(|| {
                        CompletionError::Invalid(format!("no MCP tool named \"{name}\""))
                    })
            })
            .collect()
    }

    async fn call_tool(&self, call: &ToolCall, cancel: &CancellationToken) -> ToolOutcome {
        let arguments = match serde_json::from_str::<Value>(&call.function.arguments) {
            Ok(Value::Object(map)) => map,
            Ok(Value::Null) => serde_json::Map::new(),
            Ok(_) | Err(_) if call.function.arguments.trim().is_empty() => serde_json::Map::new(),
            _ => {
                return ToolOutcome {
                    content: format!(
                        "the arguments of {} are not a JSON object: {}",
                        call.function.name, call.function.arguments
                    ),
                    is_error: true,
                }
            }
        };
        let Some(host) = &self.tools else {
            return ToolOutcome {
                content: "no MCP tools here".into(),
                is_error: true,
            };
        };
        info!(tool = %call.function.name, "completion calls an MCP tool");
        tokio::select! {
            outcome = host.call(call.function.name.clone(), arguments) => outcome,
            _ = cancel.cancelled() => ToolOutcome { content: "cancelled".into(), is_error: true },
        }
    }

    /// One model turn: route, attempt, fall back if needed, stream the answer.
    async fn turn(
        &self,
        request: &CompletionRequest,
        offered: &[Tool],
        round: usize,
        updates: &mpsc::Sender<Update>,
        cancel: &CancellationToken,
    ) -> Result<Turn, CompletionError> {
        let prompt = match &self.local {
            Some(model) => Some(
                model
                    .prompt(&local_tools::chat_messages(&request.messages, offered))
                    .map_err(CompletionError::Invalid)?,
            ),
            None => None,
        };
        let inputs = RouteInputs {
            requested: request.backend,
            local: self.local.as_ref().map(|model| {
                let (pending, max_queued) = model.load_now();
                LocalState {
                    pending,
                    max_queued,
                    estimated_first_token: prompt
                        .as_ref()
                        .and_then(|p| model.estimate_first_token(p.len())),
                    paused: !self.local_gate.load(Ordering::Relaxed),
                }
            }),
            cloud: self.cloud.as_ref().map(|c| CloudState {
                available: c.available(),
            }),
        };
        let choice = self
            .router
            .select_model(&inputs)
            .map_err(CompletionError::NoBackend)?;
        let fallback = self.router.fallback_strategy(&inputs, choice.backend);
        let attempt = Attempt {
            request,
            offered,
            prompt: prompt.as_deref(),
            cancel,
        };
        let first = self
            .attempt(&attempt, choice.backend, fallback.first_token_deadline)
            .await;
        let (source, route) = match (first, fallback.to) {
            (Ok(source), _) => (
                source,
                self.route(choice.backend, request, choice.reason, false),
            ),
            (Err(why), None) => return Err(why),
            (Err(why), Some(next)) => {
                let reason = format!(
                    "{} failed ({why}); fell back to {}",
                    choice.backend.as_str(),
                    next.as_str()
                );
                info!(%reason, "completion falls back");
                match self.attempt(&attempt, next, None).await {
                    Ok(source) => (source, self.route(next, request, reason, true)),
                    Err(second) => {
                        return Err(match second {
                            CompletionError::Busy { .. } => second,
                            _ => CompletionError::Unavailable(format!(
                                "{} failed ({why}); {} failed too ({second})",
                                choice.backend.as_str(),
                                next.as_str()
                            )),
                        })
                    }
                }
            }
        };
        let hold_tool_markup = route.backend == Backend::Local && !offered.is_empty();
        send(updates, Update::Started(route)).await?;
        relay(source, hold_tool_markup, round, updates).await
    }

    fn route(
        &self,
        backend: Backend,
        request: &CompletionRequest,
        reason: String,
        fallback: bool,
    ) -> RouteInfo {
        let model = match backend {
            Backend::Local => self
                .local
                .as_ref()
                .map(|m| m.info().name.clone())
                .unwrap_or_default(),
            Backend::Cloud => request.model.clone().unwrap_or_else(|| "cloud".into()),
        };
        RouteInfo {
            backend,
            model,
            reason,
            fallback,
        }
    }

    /// Starts `backend` on the turn and waits for its first piece of answer, for at most
    /// `deadline` when one is given.
    async fn attempt(
        &self,
        attempt: &Attempt<'_>,
        backend: Backend,
        deadline: Option<Duration>,
    ) -> Result<Source, CompletionError> {
        let cancel = attempt.cancel.child_token();
        let mut source = match backend {
            Backend::Local => self.start_local(attempt, cancel.clone())?,
            Backend::Cloud => self.start_cloud(attempt, cancel.clone()).await?,
        };
        let first = match deadline {
            Some(limit) => match tokio::time::timeout(limit, source.next()).await {
                Ok(first) => first,
                Err(_) => {
                    cancel.cancel();
                    return Err(CompletionError::Unavailable(format!(
                        "no first token within {} ms",
                        limit.as_millis()
                    )));
                }
            },
            None => source.next().await,
        };
        match first {
            Some(Piece::Error(e)) => Err(CompletionError::Unavailable(e)),
            None => Err(CompletionError::Unavailable(format!(
                "{} stopped",
                backend.as_str()
            ))),
            Some(piece) => {
                source.first = Some(piece);
                Ok(source)
            }
        }
    }

    fn start_local(
        &self,
        attempt: &Attempt<'_>,
        cancel: CancellationToken,
    ) -> Result<Source, CompletionError> {
        let (Some(model), Some(prompt)) = (&self.local, attempt.prompt) else {
            return Err(CompletionError::Unavailable(
                "no local model is loaded".into(),
            ));
        };
        let request = attempt.request;
        let defaults = SamplingParams::default();
        let options = GenerationOptions {
            max_tokens: self.max_tokens(request) as usize,
            stop: request.stop.clone(),
            sampling: SamplingParams {
                temperature: request.temperature.unwrap_or(defaults.temperature),
                top_p: request.top_p.unwrap_or(defaults.top_p),
                top_k: request.top_k.unwrap_or(defaults.top_k),
                repetition_penalty: request
                    .repetition_penalty
                    .unwrap_or(defaults.repetition_penalty),
                seed: request.seed.unwrap_or(defaults.seed),
                ..defaults
            },
            ignore_eos: false,
        };
        let events = model
            .submit(prompt.to_vec(), options, cancel.clone())
            .map_err(|e| match e {
                SubmitError::Busy { .. } => CompletionError::Busy {
                    message: e.to_string(),
                    retry_after: model.retry_after(),
                },
                SubmitError::PromptTooLong { .. } => CompletionError::Invalid(e.to_string()),
                SubmitError::Stopped => CompletionError::Unavailable(e.to_string()),
            })?;
        Ok(Source {
            first: None,
            kind: SourceKind::Local {
                events,
                _cancel: cancel.drop_guard(),
            },
        })
    }

    async fn start_cloud(
        &self,
        attempt: &Attempt<'_>,
        cancel: CancellationToken,
    ) -> Result<Source, CompletionError> {
        let Some(cloud) = &self.cloud else {
            return Err(CompletionError::Unavailable(
                "no cloud endpoint is configured".into(),
            ));
        };
        let request = attempt.request;
        let cloud_request = CloudRequest {
            model: request.model.clone(),
            messages: request.messages.clone(),
            tools: attempt.offered.to_vec(),
            max_tokens: Some(self.max_tokens(request)),
            temperature: request.temperature,
            top_p: request.top_p,
            seed: request.seed,
            stop: request.stop.clone(),
            idempotency_key: request.idempotency_key.clone(),
        };
        let events =
            cloud
                .chat(&cloud_request, cancel.clone())
                .await
                .map_err(|e: CloudError| match e {
                    CloudError::Status { status, .. }
                        if (400..500).contains(&status)
                            && ![401, 403, 408, 429].contains(&status) =>
                    {
                        CompletionError::Refused(e.to_string())
                    }
                    _ => CompletionError::Unavailable(e.to_string()),
                })?;
        Ok(Source {
            first: None,
            kind: SourceKind::Cloud {
                events,
                _cancel: cancel.drop_guard(),
            },
        })
    }

    fn max_tokens(&self, request: &CompletionRequest) -> u32 {
        request
            .max_tokens
            .unwrap_or(self.max_tokens)
            .clamp(1, self.max_tokens)
    }
}

/// What every attempt at a turn shares.
struct Attempt<'a> {
    request: &'a CompletionRequest,
    offered: &'a [Tool],
    /// The local model's prompt tokens, when there is a local model.
    prompt: Option<&'a [u32]>,
    cancel: &'a CancellationToken,
}

/// A piece of a turn's answer, whichever backend gives it.
enum Piece {
    Text(String),
    End {
        finish_reason: String,
        usage: Usage,
        tool_calls: Vec<ToolCall>,
    },
    Error(String),
}

/// A backend's answer in progress. Dropping it cancels the backend.
struct Source {
    /// The piece read while waiting for the first token.
    first: Option<Piece>,
    kind: SourceKind,
}

enum SourceKind {
    Local {
        events: mpsc::Receiver<Event>,
        _cancel: tokio_util::sync::DropGuard,
    },
    Cloud {
        events: mpsc::Receiver<Result<CloudEvent, CloudError>>,
        _cancel: tokio_util::sync::DropGuard,
    },
}

impl Source {
    async fn next(&mut self) -> Option<Piece> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        Some(match &mut self.kind {
            SourceKind::Local { events, .. } => match events.recv().await? {
                Event::Text(text) => Piece::Text(text),
                Event::Done(outcome) => Piece::End {
                    finish_reason: match outcome.finish {
                        FinishReason::Stop => "stop".into(),
                        FinishReason::Length => "length".into(),
                        FinishReason::Cancelled => return Some(Piece::Error("cancelled".into())),
                    },
                    usage: Usage::new(
                        outcome.prompt_tokens as u64,
                        outcome.completion_tokens as u64,
                        outcome.cached_tokens as u64,
                    ),
                    tool_calls: Vec::new(),
                },
                Event::Failed(e) => Piece::Error(e),
            },
            SourceKind::Cloud { events, .. } => match events.recv().await? {
                Ok(CloudEvent::Text(text)) => Piece::Text(text),
                Ok(CloudEvent::Done {
                    tool_calls,
                    finish_reason,
                    usage,
                    ..
                }) => Piece::End {
                    finish_reason,
                    usage,
                    tool_calls,
                },
                Err(e) => Piece::Error(e.to_string()),
            },
        })
    }
}

/// Streams a turn's text to the caller and returns the turn. With `hold_tool_markup` (local
/// model, tools offered), text that may be a `<tool_call>` is held back and parsed at the end.
async fn relay(
    mut source: Source,
    hold_tool_markup: bool,
    round: usize,
    updates: &mpsc::Sender<Update>,
) -> Result<Turn, CompletionError> {
    let mut text = String::new();
    let mut sent = 0;
    while let Some(piece) = source.next().await {
        match piece {
            Piece::Text(piece) => {
                text.push_str(&piece);
                let ready = if hold_tool_markup {
                    local_tools::plain_text_len(&text[sent..])
                } else {
                    text.len() - sent
                };
                if ready > 0 {
                    send(updates, Update::Text(text[sent..sent + ready].to_owned())).await?;
                    sent += ready;
                }
            }
            Piece::End {
                mut finish_reason,
                usage,
                mut tool_calls,
            } => {
                if hold_tool_markup {
                    let (rest, calls) = local_tools::parse_tool_calls(&text[sent..], round);
                    if !calls.is_empty() {
                        finish_reason = "tool_calls".into();
                        tool_calls = calls;
                    }
                    text.truncate(sent);
                    text.push_str(&rest);
                }
                if text.len() > sent {
                    send(updates, Update::Text(text[sent..].to_owned())).await?;
                }
                return Ok(Turn {
                    text,
                    tool_calls,
                    finish_reason,
                    usage,
                });
            }
            Piece::Error(e) => return Err(CompletionError::Failed(e)),
        }
    }
    Err(CompletionError::Failed(
        "the backend stopped without finishing".into(),
    ))
}

async fn send(updates: &mpsc::Sender<Update>, update: Update) -> Result<(), CompletionError> {
    updates.send(update).await.map_err(|_| GONE)
}
