//! What a generation on the local model is asked and reports: the conversation, the sampling
//! and stop settings, the streamed events and final figures, and why a request is refused.
//! Plain data, the same in a build without the `local-model` feature.

use serde::{Deserialize, Serialize};

/// One message of a conversation, as the chat APIs carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_owned(),
            content: content.into(),
        }
    }
}

/// How to pick tokens. `temperature` 0 is greedy decoding (always the likeliest token).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    pub temperature: f64,
    /// Keep the smallest set of tokens whose probabilities add up to `top_p` (1.0 keeps all).
    pub top_p: f64,
    /// Keep the `top_k` likeliest tokens (0 keeps all).
    pub top_k: usize,
    /// Divides the logits of tokens already seen in the last `repeat_last_n` (1.0 is off).
    pub repetition_penalty: f32,
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_p: 0.9,
            top_k: 40,
            repetition_penalty: 1.1,
            repeat_last_n: 64,
            seed: 42,
        }
    }
}

/// What one generation should do.
#[derive(Debug, Clone)]
pub struct GenerationOptions {
    /// Most tokens to generate; lowered to what the context has room for.
    pub max_tokens: usize,
    /// Generation ends before the first of these strings.
    pub stop: Vec<String>,
    pub sampling: SamplingParams,
    /// Keep going past the model's end-of-answer token (benchmarks that need a fixed length).
    pub ignore_eos: bool,
}

/// What a running generation reports, in order: text pieces, then exactly one `Done` or
/// `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Text(String),
    Done(Outcome),
    Failed(String),
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its answer, or a stop sequence was reached.
    Stop,
    /// `max_tokens` (or the end of the context) was reached.
    Length,
    /// The caller cancelled or went away.
    Cancelled,
}

/// Figures of one finished generation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub finish: FinishReason,
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values were still cached from the previous request.
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    /// Time spent waiting for the model to be free.
    pub queue_ms: u64,
    /// From the start of work on this request to its first generated token.
    pub time_to_first_token_ms: u64,
    pub decode_tokens_per_second: f64,
}

/// Why a request was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Every queue slot is taken.
    #[error("the local model is busy: {queued} requests are waiting (models.max_queued)")]
    Busy { queued: usize },
    /// The prompt does not leave room for an answer.
    #[error(
        "the prompt is {prompt_tokens} tokens; the local model's context holds {context_length}"
    )]
    PromptTooLong {
        prompt_tokens: usize,
        context_length: usize,
    },
    /// The model thread has stopped.
    #[error("the local model has stopped")]
    Stopped,
}
