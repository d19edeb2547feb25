//! The local model: GGUF weights on candle, the tokenizer and chat template that go with them,
//! sampling, stop sequences, streaming, a memory budget and a bounded request queue.
//!
//! - `model`: reading a model file, its memory estimate, its tokenizer and template.
//! - `engine`: the model thread, its queue, prompt caching and the generation loop.
//! - `sampling`, `stop`, `template`, `tokenizer`: one concern each.

mod engine;
mod model;
mod safetensors;
mod sampling;
mod stop;
mod template;
mod tokenizer;

pub use engine::{Event, FinishReason, GenerationOptions, LocalModel, Outcome, SubmitError};
pub use model::{LoadError, LoadOptions, MemoryEstimate, ModelInfo};
pub use sampling::SamplingParams;
pub use template::ChatMessage;
pub use tokenizer::from_gguf as tokenizer_from_gguf;

/// Sets how many threads the tensor kernels use; 0 leaves candle's default (one per core).
/// Must run before the first model is loaded, while the process has one thread: candle reads
/// the setting once, when its thread pool starts.
pub fn set_threads(threads: u32) {
    if threads > 0 {
        std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}
