//! Loading a model, as callers see it: what it takes from the configuration, the facts and
//! memory estimate of a loaded model, and why loading fails. The same in a build without the
//! `local-model` feature, where loading fails with [`LoadError::NotBuilt`].

use std::path::PathBuf;

use serde::Serialize;

use crate::config::Requantize;

const MIB: u64 = 1024 * 1024;

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be opened or read.
    #[error("cannot read model file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a GGUF file, or is damaged.
    #[error("{path} is not a usable GGUF model file: {message}")]
    Format { path: PathBuf, message: String },
    /// The model is not one this build can run.
    #[error("{path}: architecture \"{architecture}\" is not supported; this build runs llama-family GGUF models (Llama, SmolLM, TinyLlama, Mistral)")]
    Architecture { path: PathBuf, architecture: String },
    /// The model would need more memory than the configuration allows.
    #[error("model {path} needs about {needed_mb} MiB ({detail}) but models.max_memory_mb is {limit_mb}: raise models.max_memory_mb, lower models.context_length, or use a smaller model")]
    TooLarge {
        path: PathBuf,
        needed_mb: u64,
        limit_mb: u32,
        detail: String,
    },
    /// The tokenizer could not be built.
    #[error("{0}")]
    Tokenizer(String),
    /// The thread that runs the model could not be started.
    #[error("cannot start the model thread: {0}")]
    Thread(std::io::Error),
    /// This build has no local model.
    #[error("this mcp-gateway was built without the local model (the `local-model` feature): remove models.model_path from the configuration to use the cloud model only, or install a build with it")]
    NotBuilt,
}

/// What the model will hold in memory once loaded and serving.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MemoryEstimate {
    /// Quantized weights, plus the token embedding table expanded to f32.
    pub weights_bytes: u64,
    /// Keys and values of every layer for a full context, in f32.
    pub kv_cache_bytes: u64,
    /// Activations and attention scores of one prefill chunk, logits, rotary tables.
    pub working_bytes: u64,
}

impl MemoryEstimate {
    pub fn total_mb(&self) -> u64 {
        (self.weights_bytes + self.kv_cache_bytes + self.working_bytes).div_ceil(MIB)
    }

    #[cfg(feature = "local-model")]
    pub(super) fn detail(&self, context_length: usize) -> String {
        format!(
            "weights {} MiB, KV cache {} MiB for {context_length} tokens, working memory {} MiB",
            self.weights_bytes.div_ceil(MIB),
            self.kv_cache_bytes.div_ceil(MIB),
            self.working_bytes.div_ceil(MIB)
        )
    }
}

/// Facts about the loaded model, as `/v1/models` and the logs show them.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// Name the model is served under.
    pub name: String,
    pub path: PathBuf,
    pub architecture: String,
    /// Weight format of most tensors (`q4_1`, `q8_0`, ...).
    pub quantization: String,
    /// Tokens of prompt plus answer one request may use.
    pub context_length: usize,
    pub memory: MemoryEstimate,
    /// `model` when the file's own chat template is used, else `chatml`.
    pub chat_template: &'static str,
    pub tokenizer: &'static str,
}

/// What loading needs from the configuration.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub name: Option<String>,
    pub path: PathBuf,
    /// `tokenizer.json` to use instead of the GGUF metadata; when unset, one beside the model
    /// file is used if present.
    pub tokenizer_path: Option<PathBuf>,
    pub max_memory_mb: u32,
    pub context_length: usize,
    pub requantize: Requantize,
}
