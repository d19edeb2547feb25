//! An MCP server (stdio) exposing the fixtures that the official conformance suite's server
//! scenarios call: `test_simple_text`, `test_tool_with_progress`, `test://static-text`,
//! `test_simple_prompt` and the rest, each answering as the scenario expects.
//!
//! The gateway's conformance test runs the suite against the gateway with this server as its
//! only upstream (no prefix), so what is scored is what the gateway forwards: progress, logs,
//! sampling and elicitation requests, resources, prompts and completions.

#![allow(deprecated)] // Logging, sampling and subscriptions are 2025-11-25 features.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::*;
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler, ServiceExt};
use serde_json::{json, Value};

/// 1x1 PNG.
const IMAGE: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A minimal WAV file.
const AUDIO: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

fn object(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::default(),
    }
}

fn tool(name: &'static str, description: &'static str, schema: Value) -> Tool {
    Tool::new(name, description, object(schema))
}

fn empty_schema() -> Value {
    json!({ "type": "object", "properties": {} })
}

fn string_argument(name: &str, description: &str) -> Value {
    json!({ "type": "object", "properties": { name: { "type": "string", "description": description } }, "required": [name] })
}

fn tools() -> Vec<Tool> {
    vec![
        tool(
            "test_simple_text",
            "Returns a simple text response",
            empty_schema(),
        ),
        tool("test_image_content", "Returns an image", empty_schema()),
        tool("test_audio_content", "Returns audio", empty_schema()),
        tool(
            "test_embedded_resource",
            "Returns an embedded resource",
            empty_schema(),
        ),
        tool(
            "test_multiple_content_types",
            "Returns text, an image and a resource",
            empty_schema(),
        ),
        tool(
            "test_tool_with_logging",
            "Sends three log messages while it runs",
            empty_schema(),
        ),
        tool(
            "test_tool_with_progress",
            "Reports progress three times, pause_ms apart (50 unless given)",
            empty_schema(),
        ),
        tool(
            "test_error_handling",
            "Always returns a tool error",
            empty_schema(),
        ),
        tool(
            "test_sampling",
            "Asks the client's model to answer a prompt",
            string_argument("prompt", "The prompt to send to the LLM"),
        ),
        tool(
            "test_elicitation",
            "Asks the user for input",
            string_argument("message", "The message to show the user"),
        ),
        tool(
            "test_elicitation_sep1034_defaults",
            "Elicitation with default values (SEP-1034)",
            empty_schema(),
        ),
        tool(
            "test_elicitation_sep1330_enums",
            "Elicitation with enum variants (SEP-1330)",
            empty_schema(),
        ),
        tool(
            "json_schema_2020_12_tool",
            "Takes a JSON Schema 2020-12 input",
            json_schema_2020_12(),
        ),
        tool(
            "test_missing_capability",
            "Needs the client's sampling capability",
            empty_schema(),
        ),
        tool(
            "test_streaming_elicitation",
            "Streams progress, then answers",
            empty_schema(),
        ),
        tool(
            "test_logging_tool",
            "Logs a message when the request asks for logs",
            empty_schema(),
        ),
        tool(
            "test_input_required_result_elicitation",
            "Asks for the user's name (input_required)",
            empty_schema(),
        ),
        tool(
            "test_input_required_result_sampling",
            "Asks the client's model a question (input_required)",
            empty_schema(),
        ),
        tool(
            "test_input_required_result_list_roots",
            "Asks for the client's roots (input_required)",
            empty_schema(),
        ),
        tool(
            "test_input_required_result_request_state",
            "Confirms with request state (input_required)",
            empty_schema(),
        ),
        tool(
            "test_input_required_result_multiple_inputs",
            "Asks for three inputs at once (input_required)",
            empty_schema(),
        ),
        tool(
            "test_input_required_result_multi_round",
            "Asks in two rounds (input_required)",
            empty_schema(),
        ),
        tool(
            "test_input_required_result_tampered_state",
            "Checks its request state's integrity (input_required)",
            empty_schema(),
        ),
        tool(
            "test_wait_for_cancel",
            "Waits until cancelled, then says so on stderr (for the gateway's own tests)",
            empty_schema(),
        ),
        tool(
            "test_trigger_tool_change",
            "Adds or removes test_dynamic_tool and says so",
            empty_schema(),
        ),
        tool(
            "test_trigger_prompt_change",
            "Adds or removes test_dynamic_prompt and says so",
            empty_schema(),
        ),
        tool(
            "test_input_required_result_capabilities",
            "Asks only for what the client can answer (input_required)",
            empty_schema(),
        ),
    ]
}

fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": { "address": { "$anchor": "addressDef", "type": "object", "properties": {
            "street": { "type": "string" }, "city": { "type": "string" } } } },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" }
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": { "properties": { "contactMethod": { "const": "phone" } }, "required": ["contactMethod"] },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false
    })
}

/// Shared by every connection of the fixture: the list-change triggers and the open listen
/// streams they notify.
#[derive(Debug, Clone, Default)]
struct Fixture {
    extra_tool: Arc<std::sync::atomic::AtomicBool>,
    extra_prompt: Arc<std::sync::atomic::AtomicBool>,
    listeners: Arc<std::sync::Mutex<Vec<rmcp::service::SubscriptionSink>>>,
}

impl Fixture {
    /// Toggles a flag and tells every listener (2026-07-28) and the caller's session
    /// (2025-11-25) that the list changed.
    async fn toggle(
        &self,
        flag: &std::sync::atomic::AtomicBool,
        notification: ServerNotification,
        cx: &RequestContext<RoleServer>,
    ) {
        flag.fetch_xor(true, std::sync::atomic::Ordering::SeqCst);
        let listeners = self.listeners.lock().map(|l| l.clone()).unwrap_or_default();
        for sink in listeners {
            let _ = sink.send(notification.clone()).await;
        }
        if !modern(cx) {
            let _ = match notification {
                ServerNotification::ToolListChangedNotification(_) => {
                    cx.peer.notify_tool_list_changed().await
                }
                _ => cx.peer.notify_prompt_list_changed().await,
            };
        }
    }
}

fn text(value: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(value)])
}

fn request<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, McpError> {
    serde_json::from_value(value)
        .map_err(|e| McpError::internal_error(format!("fixture request: {e}"), None))
}

/// An answer the client gave, or the `input_required` result that asks for it.
enum Asked {
    Answer(Value),
    Pending(InputRequiredResult),
}

/// Whether the client is on 2026-07-28 (no server-to-client requests; input goes through
/// `input_required` results).
fn modern(cx: &RequestContext<RoleServer>) -> bool {
    cx.meta
        .protocol_version()
        .is_some_and(|v| !v.has_initialize())
}

fn input_requests(requests: Value) -> Result<InputRequests, McpError> {
    request(requests)
}

/// Asks the client for input under `key`: a server-to-client request on 2025-11-25, an
/// `input_required` result on 2026-07-28 (answered when the client retries).
async fn ask(
    cx: &RequestContext<RoleServer>,
    call: &CallToolRequestParams,
    key: &str,
    method: &str,
    params: Value,
) -> Result<Asked, McpError> {
    if modern(cx) {
        if let Some(answer) = call.input_responses.as_ref().and_then(|r| r.get(key)) {
            return Ok(Asked::Answer(answer.clone()));
        }
        let requests = input_requests(json!({ key: { "method": method, "params": params } }))?;
        return Ok(Asked::Pending(InputRequiredResult::from_input_requests(
            requests,
        )));
    }
    let server_request: ServerRequest = request(json!({ "method": method, "params": params }))?;
    let answer = cx
        .peer
        .send_request(server_request)
        .await
        .map_err(|e| McpError::internal_error(format!("{method} failed: {e}"), None))?;
    serde_json::to_value(answer)
        .map(Asked::Answer)
        .map_err(|e| McpError::internal_error(e.to_string(), None))
}

fn elicitation_summary(answer: &Value) -> String {
    format!(
        "action={}, content={}",
        answer["action"].as_str().unwrap_or("?"),
        answer["content"]
    )
}

fn elicitation(message: &str, properties: Value) -> Value {
    json!({
        "mode": "form",
        "message": message,
        "requestedSchema": { "type": "object", "properties": properties, "required": [] }
    })
}

fn sampling(prompt: &str, max_tokens: u32) -> Value {
    json!({ "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }], "maxTokens": max_tokens })
}

/// Request state for the tampered-state fixture: the payload and a keyed hash of it.
fn seal(payload: &str) -> String {
    format!("{payload}.{:016x}", keyed_hash(payload))
}

fn unseal(state: &str) -> Option<&str> {
    let (payload, tag) = state.rsplit_once('.')?;
    (format!("{:016x}", keyed_hash(payload)) == tag).then_some(payload)
}

fn keyed_hash(payload: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut hasher = KEY.get_or_init(Default::default).build_hasher();
    hasher.write(payload.as_bytes());
    hasher.finish()
}

macro_rules! answer {
    ($asked:expr) => {
        match $asked? {
            Asked::Answer(answer) => answer,
            Asked::Pending(pending) => return Ok(CallToolResponse::InputRequired(pending)),
        }
    };
}

impl Fixture {
    async fn call(
        &self,
        call: &CallToolRequestParams,
        cx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let arguments = call.arguments.clone().unwrap_or_default();
        let argument = |key: &str| {
            arguments
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let responses = call.input_responses.clone().unwrap_or_default();
        let state = call.request_state.clone();
        let pending =
            |requests: Value, state: Option<String>| -> Result<CallToolResponse, McpError> {
                Ok(CallToolResponse::InputRequired(InputRequiredResult::new(
                    Some(input_requests(requests)?),
                    state,
                )))
            };
        let accepted = |key: &str, field: &str| -> Option<String> {
            let answer = responses.get(key)?;
            (answer["action"] == "accept")
                .then(|| answer["content"][field].as_str().map(str::to_owned))
                .flatten()
        };
        let result = match call.name.as_ref() {
            "test_simple_text" => text("This is a simple text response for testing."),
            "test_image_content" => {
                CallToolResult::success(vec![ContentBlock::image(IMAGE, "image/png")])
            }
            "test_audio_content" => {
                CallToolResult::success(vec![ContentBlock::audio(AUDIO, "audio/wav")])
            }
            "test_embedded_resource" => CallToolResult::success(vec![ContentBlock::resource(
                ResourceContents::text(
                    "This is an embedded resource content.",
                    "test://embedded-resource",
                )
                .with_mime_type("text/plain"),
            )]),
            "test_multiple_content_types" => CallToolResult::success(vec![
                ContentBlock::text("Multiple content types test:"),
                ContentBlock::image(IMAGE, "image/png"),
                ContentBlock::resource(
                    ResourceContents::text(
                        r#"{"test":"data","value":123}"#,
                        "test://mixed-content-resource",
                    )
                    .with_mime_type("application/json"),
                ),
            ]),
            "test_tool_with_logging" => {
                for message in [
                    "Tool execution started",
                    "Tool processing data",
                    "Tool execution completed",
                ] {
                    let log =
                        LoggingMessageNotificationParam::new(LoggingLevel::Info, json!(message));
                    let _ = cx.peer.notify_logging_message(log).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                text("Tool with logging executed successfully")
            }
            "test_logging_tool" => {
                let log = LoggingMessageNotificationParam::new(
                    LoggingLevel::Info,
                    json!("test_logging_tool ran"),
                );
                let _ = cx.peer.notify_logging_message(log).await;
                text("Logged one message")
            }
            "test_tool_with_progress" | "test_streaming_elicitation" => {
                let token = cx.meta.get_progress_token();
                // The gateway's own test asks for no pause: the answer follows at once.
                let pause = arguments
                    .get("pause_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(50);
                if let Some(token) = &token {
                    for (step, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                        let notification = ProgressNotificationParam::new(token.clone(), progress)
                            .with_total(100.0)
                            .with_message(format!("Completed step {} of 3", step + 1));
                        let _ = cx.peer.notify_progress(notification).await;
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                }
                let token = token.map(|t| serde_json::to_value(t).unwrap_or_default());
                text(match token {
                    Some(Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => "0".into(),
                })
            }
            "test_wait_for_cancel" => {
                tokio::select! {
                    _ = cx.ct.cancelled() => eprintln!("test_wait_for_cancel: cancelled by the client"),
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
                text("waited")
            }
            "test_trigger_tool_change" => {
                self.toggle(
                    &self.extra_tool,
                    ServerNotification::ToolListChangedNotification(Default::default()),
                    cx,
                )
                .await;
                text("The tool list changed")
            }
            "test_trigger_prompt_change" => {
                self.toggle(
                    &self.extra_prompt,
                    ServerNotification::PromptListChangedNotification(Default::default()),
                    cx,
                )
                .await;
                text("The prompt list changed")
            }
            "test_dynamic_tool" if self.extra_tool.load(std::sync::atomic::Ordering::SeqCst) => {
                text("The dynamic tool ran")
            }
            "test_error_handling" => CallToolResult::error(vec![ContentBlock::text(
                "This tool intentionally returns an error for testing",
            )]),
            "json_schema_2020_12_tool" => text(format!(
                "JSON Schema 2020-12 tool called with: {}",
                Value::Object(arguments.clone())
            )),
            "test_missing_capability" => {
                let has_sampling = cx
                    .meta
                    .client_capabilities()
                    .is_some_and(|c| c.sampling.is_some());
                if !has_sampling {
                    return Err(McpError::new(
                        ErrorCode(-32021),
                        "this tool needs the client's sampling capability",
                        Some(json!({ "requiredCapabilities": { "sampling": {} } })),
                    ));
                }
                text("The client declared sampling")
            }
            "test_sampling" => {
                let answer = answer!(
                    ask(
                        cx,
                        call,
                        "sampling",
                        "sampling/createMessage",
                        sampling(&argument("prompt"), 100)
                    )
                    .await
                );
                text(format!(
                    "LLM response: {}",
                    answer["content"]["text"].as_str().unwrap_or_default()
                ))
            }
            "test_elicitation" => {
                let params = json!({
                    "mode": "form",
                    "message": argument("message"),
                    "requestedSchema": {
                        "type": "object",
                        "properties": { "response": { "type": "string", "description": "User's response" } },
                        "required": ["response"]
                    }
                });
                let answer =
                    answer!(ask(cx, call, "elicitation", "elicitation/create", params).await);
                text(format!("User response: {}", elicitation_summary(&answer)))
            }
            "test_elicitation_sep1034_defaults" => {
                let params = elicitation(
                    "Please review and update the form fields with defaults",
                    json!({
                        "name": { "type": "string", "description": "User name", "default": "John Doe" },
                        "age": { "type": "integer", "description": "User age", "default": 30 },
                        "score": { "type": "number", "description": "User score", "default": 95.5 },
                        "status": { "type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active" },
                        "verified": { "type": "boolean", "description": "Verification status", "default": true }
                    }),
                );
                let answer =
                    answer!(ask(cx, call, "elicitation", "elicitation/create", params).await);
                text(format!(
                    "Elicitation completed: {}",
                    elicitation_summary(&answer)
                ))
            }
            "test_elicitation_sep1330_enums" => {
                let params = elicitation(
                    "Please select options from the enum fields",
                    json!({
                        "untitledSingle": { "type": "string", "description": "Select one option", "enum": ["option1", "option2", "option3"] },
                        "titledSingle": { "type": "string", "description": "Select one option with titles", "oneOf": [
                            { "const": "value1", "title": "First Option" },
                            { "const": "value2", "title": "Second Option" },
                            { "const": "value3", "title": "Third Option" }
                        ] },
                        "legacyEnum": { "type": "string", "description": "Select one option (legacy)", "enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"] },
                        "untitledMulti": { "type": "array", "description": "Select multiple options", "minItems": 1, "maxItems": 3, "items": { "type": "string", "enum": ["option1", "option2", "option3"] } },
                        "titledMulti": { "type": "array", "description": "Select multiple options with titles", "minItems": 1, "maxItems": 3, "items": { "anyOf": [
                            { "const": "value1", "title": "First Choice" },
                            { "const": "value2", "title": "Second Choice" },
                            { "const": "value3", "title": "Third Choice" }
                        ] } }
                    }),
                );
                let answer =
                    answer!(ask(cx, call, "elicitation", "elicitation/create", params).await);
                text(format!(
                    "Elicitation completed: {}",
                    elicitation_summary(&answer)
                ))
            }
            "test_input_required_result_elicitation" => match accepted("user_name", "name") {
                Some(name) => text(format!("Hello, {name}!")),
                None => {
                    return pending(
                        json!({ "user_name": { "method": "elicitation/create", "params":
                    elicitation("What is your name?", json!({ "name": { "type": "string" } })) } }),
                        None,
                    )
                }
            },
            "test_input_required_result_sampling" => match responses.get("capital_question") {
                Some(answer) => text(format!(
                    "Sampling result: {}",
                    answer["content"]["text"].as_str().unwrap_or_default()
                )),
                None => {
                    return pending(
                        json!({ "capital_question": { "method": "sampling/createMessage", "params":
                    sampling("What is the capital of France?", 100) } }),
                        None,
                    )
                }
            },
            "test_input_required_result_list_roots" => match responses.get("client_roots") {
                Some(answer) => text(format!(
                    "Found {} root(s)",
                    answer["roots"].as_array().map_or(0, Vec::len)
                )),
                None => {
                    return pending(
                        json!({ "client_roots": { "method": "roots/list", "params": {} } }),
                        None,
                    )
                }
            },
            "test_input_required_result_request_state" => {
                match (responses.get("confirm"), state.as_deref()) {
                    (Some(answer), Some("state-ok:confirm")) if answer["content"]["ok"] == true => {
                        text("Confirmed: state-ok")
                    }
                    _ => {
                        return pending(
                            json!({ "confirm": { "method": "elicitation/create", "params":
                        elicitation("Please confirm", json!({ "ok": { "type": "boolean" } })) } }),
                            Some("state-ok:confirm".into()),
                        )
                    }
                }
            }
            "test_input_required_result_multiple_inputs" => {
                let complete = ["user_name", "greeting", "client_roots"]
                    .iter()
                    .all(|k| responses.contains_key(*k))
                    && state.as_deref() == Some("multiple");
                if complete {
                    text("Received all three inputs")
                } else {
                    return pending(
                        json!({
                            "user_name": { "method": "elicitation/create", "params": elicitation("What is your name?", json!({ "name": { "type": "string" } })) },
                            "greeting": { "method": "sampling/createMessage", "params": sampling("Generate a greeting", 50) },
                            "client_roots": { "method": "roots/list", "params": {} }
                        }),
                        Some("multiple".into()),
                    );
                }
            }
            "test_input_required_result_multi_round" => match (
                state.as_deref(),
                accepted("step1", "name"),
                accepted("step2", "color"),
            ) {
                (Some(s), _, Some(color)) if s.starts_with("round-2:") => text(format!(
                    "Multi-round complete for {} who likes {color}",
                    &s["round-2:".len()..]
                )),
                (Some("round-1"), Some(name), _) => {
                    return pending(
                        json!({ "step2": { "method": "elicitation/create", "params":
                        elicitation("Step 2: What is your favorite color?", json!({ "color": { "type": "string" } })) } }),
                        Some(format!("round-2:{name}")),
                    );
                }
                _ => {
                    return pending(
                        json!({ "step1": { "method": "elicitation/create", "params":
                    elicitation("Step 1: What is your name?", json!({ "name": { "type": "string" } })) } }),
                        Some("round-1".into()),
                    )
                }
            },
            "test_input_required_result_tampered_state" => match state.as_deref() {
                Some(state) => {
                    if unseal(state).is_none() {
                        return Err(McpError::invalid_params(
                            "requestState integrity check failed",
                            None,
                        ));
                    }
                    text("Confirmed with intact state")
                }
                None => {
                    return pending(
                        json!({ "confirm": { "method": "elicitation/create", "params":
                    elicitation("Please confirm", json!({ "ok": { "type": "boolean" } })) } }),
                        Some(seal("confirm")),
                    )
                }
            },
            "test_input_required_result_capabilities" => {
                if !responses.is_empty() {
                    text("Answered with what the client can do")
                } else {
                    let capabilities = cx.meta.client_capabilities().unwrap_or_default();
                    let requests = if capabilities.elicitation.is_some() {
                        json!({ "user_name": { "method": "elicitation/create", "params": elicitation("What is your name?", json!({ "name": { "type": "string" } })) } })
                    } else if capabilities.sampling.is_some() {
                        json!({ "capital_question": { "method": "sampling/createMessage", "params": sampling("What is the capital of France?", 100) } })
                    } else {
                        json!({ "client_roots": { "method": "roots/list", "params": {} } })
                    };
                    return pending(requests, None);
                }
            }
            other => {
                return Err(McpError::invalid_params(
                    format!("Tool {other} not found"),
                    None,
                ))
            }
        };
        Ok(result.into())
    }
}

fn resources() -> Vec<Resource> {
    vec![
        Resource::new("test://static-text", "static-text")
            .with_title("Static Text Resource")
            .with_description("A static text resource for testing")
            .with_mime_type("text/plain"),
        Resource::new("test://static-binary", "static-binary")
            .with_title("Static Binary Resource")
            .with_description("A static binary resource (image) for testing")
            .with_mime_type("image/png"),
        Resource::new("test://watched-resource", "watched-resource")
            .with_title("Watched Resource")
            .with_description("A resource that can be subscribed to")
            .with_mime_type("text/plain"),
    ]
}

fn prompts() -> Vec<Prompt> {
    let argument = |name: &str, description: &str| {
        PromptArgument::new(name)
            .with_description(description)
            .with_required(true)
    };
    vec![
        Prompt::new(
            "test_simple_prompt",
            Some("A simple prompt without arguments"),
            None,
        ),
        Prompt::new(
            "test_prompt_with_arguments",
            Some("A prompt with required arguments"),
            Some(vec![
                argument("arg1", "First test argument"),
                argument("arg2", "Second test argument"),
            ]),
        ),
        Prompt::new(
            "test_prompt_with_embedded_resource",
            Some("A prompt that includes an embedded resource"),
            Some(vec![argument(
                "resourceUri",
                "URI of the resource to embed",
            )]),
        ),
        Prompt::new(
            "test_prompt_with_image",
            Some("A prompt that includes image content"),
            None,
        ),
        Prompt::new(
            "test_input_required_result_prompt",
            Some("A prompt that asks the user for context (input_required)"),
            None,
        ),
    ]
}

impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_logging()
            .enable_completions()
            .build();
        ServerConfig::new(capabilities).with_server_info(Implementation::new(
            "mcp-edge-conformance-upstream",
            "1.0.0",
        ))
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut tools = tools();
        if self.extra_tool.load(std::sync::atomic::Ordering::SeqCst) {
            tools.push(tool(
                "test_dynamic_tool",
                "Listed only after test_trigger_tool_change",
                empty_schema(),
            ));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.call(&request, &cx).await
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(resources()))
    }

    async fn list_resource_templates(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let template = ResourceTemplate::new("test://template/{id}/data", "template")
            .with_title("Resource Template")
            .with_description("A resource template with parameter substitution")
            .with_mime_type("application/json");
        Ok(ListResourceTemplatesResult::with_all_items(vec![template]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri.as_str();
        let contents = match uri {
            "test://static-text" => {
                ResourceContents::text("This is the content of the static text resource.", uri)
                    .with_mime_type("text/plain")
            }
            "test://static-binary" => {
                ResourceContents::blob(IMAGE, uri).with_mime_type("image/png")
            }
            "test://watched-resource" => {
                ResourceContents::text("Watched resource content", uri).with_mime_type("text/plain")
            }
            _ => match uri
                .strip_prefix("test://template/")
                .and_then(|rest| rest.strip_suffix("/data"))
            {
                Some(id) if !id.is_empty() => {
                    let body = json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
                    ResourceContents::text(body.to_string(), uri).with_mime_type("application/json")
                }
                _ => {
                    return Err(McpError::invalid_params(
                        format!("Resource {uri} not found"),
                        Some(json!({ "uri": uri })),
                    ))
                }
            },
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn subscribe(
        &self,
        _: SubscribeRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }

    async fn unsubscribe(
        &self,
        _: UnsubscribeRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }

    async fn list_prompts(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let mut prompts = prompts();
        if self.extra_prompt.load(std::sync::atomic::Ordering::SeqCst) {
            prompts.push(Prompt::new(
                "test_dynamic_prompt",
                Some("Listed only after test_trigger_prompt_change"),
                None,
            ));
        }
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let argument = |key: &str| {
            request
                .arguments
                .as_ref()
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let messages = match request.name.as_str() {
            "test_simple_prompt" => vec![PromptMessage::new_text(
                Role::User,
                "This is a simple prompt for testing.",
            )],
            "test_prompt_with_arguments" => vec![PromptMessage::new_text(
                Role::User,
                format!(
                    "Prompt with arguments: arg1='{}', arg2='{}'",
                    argument("arg1"),
                    argument("arg2")
                ),
            )],
            "test_prompt_with_embedded_resource" => vec![
                PromptMessage::new(
                    Role::User,
                    ContentBlock::resource(
                        ResourceContents::text(
                            "Embedded resource content for testing.",
                            argument("resourceUri"),
                        )
                        .with_mime_type("text/plain"),
                    ),
                ),
                PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
            ],
            "test_input_required_result_prompt" => {
                let context = request
                    .input_responses
                    .as_ref()
                    .and_then(|r| r.get("user_context"))
                    .and_then(|answer| answer["content"]["context"].as_str().map(str::to_owned));
                match context {
                    Some(context) => vec![PromptMessage::new_text(
                        Role::User,
                        format!("Prompt with context: {context}"),
                    )],
                    None => {
                        let requests = input_requests(
                            json!({ "user_context": { "method": "elicitation/create", "params":
                            elicitation("What context should the prompt use?", json!({ "context": { "type": "string" } })) } }),
                        )?;
                        return Ok(GetPromptResponse::InputRequired(
                            InputRequiredResult::from_input_requests(requests),
                        ));
                    }
                }
            }
            "test_prompt_with_image" => vec![
                PromptMessage::new(Role::User, ContentBlock::image(IMAGE, "image/png")),
                PromptMessage::new_text(Role::User, "Please analyze the image above."),
            ],
            other => {
                return Err(McpError::invalid_params(
                    format!("Prompt {other} not found"),
                    None,
                ))
            }
        };
        Ok(GetPromptResult::new(messages).into())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, context: rmcp::service::SubscriptionContext) -> Result<(), McpError> {
        if let Ok(mut listeners) = self.listeners.lock() {
            listeners.push(context.sink().clone());
        }
        context.cancelled().await;
        let id = context.sink().id().clone();
        if let Ok(mut listeners) = self.listeners.lock() {
            listeners.retain(|s| s.id() != &id);
        }
        Ok(())
    }

    async fn complete(
        &self,
        _: CompleteRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        Ok(CompleteResult::new(CompletionInfo::default()))
    }

    async fn set_level(
        &self,
        _: SetLevelRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let running = Fixture::default().serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
