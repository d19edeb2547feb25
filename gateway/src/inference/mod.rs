//! The local model: GGUF weights on candle, the tokenizer and chat template that go with them,
//! sampling, stop sequences, streaming, a memory budget and a bounded request queue.
//!
//! - `request`, `load`: what callers hand in and get back; plain data, in every build.
//! - `llama`: GGUF llama models on the quantized kernels of `mcp-edge-kernels`.
//! - `model`: reading a model file, its memory estimate, its tokenizer and template.
//! - `engine`: the model thread, its queue, prompt caching and the generation loop.
//! - `sampling`, `stop`, `template`, `tokenizer`: one concern each.
//! - `absent`: the [`LocalModel`] of a build without the `local-model` feature, which no
//!   configuration can load (docs/FEATURES.md).

mod load;
mod request;

#[cfg(feature = "local-model")]
mod engine;
#[cfg(feature = "local-model")]
mod llama;
#[cfg(feature = "local-model")]
mod model;
#[cfg(feature = "local-model")]
mod safetensors;
#[cfg(feature = "local-model")]
mod sampling;
#[cfg(feature = "local-model")]
mod stop;
#[cfg(feature = "local-model")]
mod template;
#[cfg(feature = "local-model")]
mod tokenizer;

#[cfg(not(feature = "local-model"))]
mod absent;

#[cfg(not(feature = "local-model"))]
pub use absent::LocalModel;
#[cfg(feature = "local-model")]
pub use engine::LocalModel;
pub use load::{LoadError, LoadOptions, MemoryEstimate, ModelInfo};
pub use request::{
    ChatMessage, Event, FinishReason, GenerationOptions, Outcome, SamplingParams, SubmitError,
};
#[cfg(feature = "local-model")]
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

/// How many threads the tensor kernels use; 0 in a build without the local model.
pub fn threads() -> usize {
    #[cfg(feature = "local-model")]
    return candle_core::utils::get_num_threads();
    #[cfg(not(feature = "local-model"))]
    return 0;
}
