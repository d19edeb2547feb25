//! The local model for MCP clients: the `generate` tool and the `ask_local_model` prompt,
//! listed only when a local model is loaded.

use rmcp::model::{
    CallToolResult, ContentBlock, GetPromptResult, Prompt, PromptArgument, PromptMessage, Role,
    Tool,
};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::inference::{ChatMessage, Event, GenerationOptions, LocalModel, SamplingParams};

pub const GENERATE: &str = "generate";
pub const ASK: &str = "ask_local_model";

/// Longest answer an MCP client may ask for; the model's context bounds it further.
const MAX_TOKENS_CEILING: u64 = 4_096;

pub fn tool(model: &LocalModel) -> Tool {
    let schema = super::builtin::schema(json!({
        "type": "object",
        "properties": {
            "prompt": { "type": "string", "description": "What to ask the model." },
            "system": { "type": "string", "description": "System message (optional)." },
            "max_tokens": { "type": "integer", "minimum": 1, "maximum": MAX_TOKENS_CEILING },
            "temperature": { "type": "number", "minimum": 0, "maximum": 2, "description": "0 is greedy (deterministic)." },
            "seed": { "type": "integer", "minimum": 0 },
            "stop": { "type": "array", "items": { "type": "string" } }
        },
        "required": ["prompt"],
        "additionalProperties": false
    }));
    Tool::new(
        GENERATE,
        format!(
            "Generate text with the model running on this device ({}), without network access.",
            model.info().name
        ),
        schema,
    )
}

pub fn prompt(model: &LocalModel) -> Prompt {
    Prompt::new(
        ASK,
        Some(format!(
            "A question answered by the model on this device ({}); the conversation comes back as the prompt.",
            model.info().name
        )),
        Some(vec![PromptArgument::new("question")
            .with_description("What to ask.")
            .with_required(true)]),
    )
}

/// Runs the `generate` tool. Bad arguments and model failures are tool errors.
pub async fn call(
    model: &LocalModel,
    arguments: Option<&Map<String, Value>>,
    cancel: CancellationToken,
) -> CallToolResult {
    let empty = Map::new();
    let arguments = arguments.unwrap_or(&empty);
    let request = match Request::parse(arguments) {
        Ok(request) => request,
        Err(e) => return CallToolResult::error(vec![ContentBlock::text(e)]),
    };
    match run(model, &request, cancel).await {
        Ok((text, finish_reason, tokens)) => {
            let mut result = CallToolResult::success(vec![ContentBlock::text(text.clone())]);
            result.structured_content = Some(json!({
                "text": text,
                "finish_reason": finish_reason,
                "completion_tokens": tokens,
                "model": model.info().name,
            }));
            result
        }
        Err(e) => CallToolResult::error(vec![ContentBlock::text(e)]),
    }
}

/// Fills `ask_local_model`: the question and the model's answer.
pub async fn get_prompt(
    model: &LocalModel,
    arguments: Option<&Map<String, Value>>,
    cancel: CancellationToken,
) -> Result<GetPromptResult, String> {
    let question = arguments
        .and_then(|a| a.get("question"))
        .and_then(Value::as_str)
        .filter(|q| !q.trim().is_empty())
        .ok_or("the argument question is required")?;
    let mut arguments = Map::new();
    arguments.insert("prompt".into(), json!(question));
    let request = Request::parse(&arguments)?;
    let (answer, _, _) = run(model, &request, cancel).await?;
    Ok(GetPromptResult::new(vec![
        PromptMessage::new_text(Role::User, question),
        PromptMessage::new_text(Role::Assistant, answer),
    ])
    .with_description(format!("Answered by {}", model.info().name)))
}

struct Request {
    messages: Vec<ChatMessage>,
    options: GenerationOptions,
}

impl Request {
    fn parse(arguments: &Map<String, Value>) -> Result<Self, String> {
        let string = |key: &str| arguments.get(key).and_then(Value::as_str);
        let prompt = string("prompt").ok_or("the argument prompt (a string) is required")?;
        let mut messages = Vec::new();
        if let Some(system) = string("system") {
            messages.push(ChatMessage::new("system", system));
        }
        messages.push(ChatMessage::new("user", prompt));
        let defaults = SamplingParams::default();
        let max_tokens = match arguments.get("max_tokens") {
            None => 256,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_TOKENS_CEILING).contains(n))
                .ok_or(format!(
                    "max_tokens must be an integer from 1 to {MAX_TOKENS_CEILING}"
                ))?,
        };
        let temperature = match arguments.get("temperature") {
            None => defaults.temperature,
            Some(v) => v
                .as_f64()
                .filter(|t| (0.0..=2.0).contains(t))
                .ok_or("temperature must be a number from 0 to 2")?,
        };
        let seed = match arguments.get("seed") {
            None => defaults.seed,
            Some(v) => v.as_u64().ok_or("seed must be a non-negative integer")?,
        };
        let stop = match arguments.get("stop") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or("stop must be a list of strings")?,
            Some(_) => return Err("stop must be a list of strings".into()),
        };
        Ok(Self {
            messages,
            options: GenerationOptions {
                max_tokens: max_tokens as usize,
                stop,
                sampling: SamplingParams {
                    temperature,
                    seed,
                    ..defaults
                },
                ignore_eos: false,
            },
        })
    }
}

/// The answer's text, why it ended, and its length in tokens.
async fn run(
    model: &LocalModel,
    request: &Request,
    cancel: CancellationToken,
) -> Result<(String, &'static str, usize), String> {
    let prompt = model.prompt(&request.messages)?;
    let mut events = model
        .submit(prompt, request.options.clone(), cancel)
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    while let Some(event) = events.recv().await {
        match event {
            Event::Text(piece) => text.push_str(&piece),
            Event::Done(outcome) => {
                let reason = match outcome.finish {
                    crate::inference::FinishReason::Stop => "stop",
                    crate::inference::FinishReason::Length => "length",
                    crate::inference::FinishReason::Cancelled => return Err("cancelled".into()),
                };
                return Ok((text, reason, outcome.completion_tokens));
            }
            Event::Failed(e) => return Err(e),
        }
    }
    Err("the local model stopped".into())
}
