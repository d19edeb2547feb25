//! Hugging Face checkpoints of the llama family: a directory with `config.json`, the weights
//! in `*.safetensors`, `tokenizer.json`, and optionally `tokenizer_config.json` (whose
//! `chat_template` is used). Weights run in f32 on the CPU.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama::{Cache, Config, Llama, LlamaConfig, LlamaEosToks};

use super::load::{LoadError, MemoryEstimate};
use super::model::PREFILL_CHUNK;

/// A loaded checkpoint and its KV cache.
pub struct Checkpoint {
    model: Llama,
    config: Config,
    cache: Cache,
}

impl Checkpoint {
    pub fn forward(&mut self, tokens: &[u32], index_pos: usize) -> candle_core::Result<Tensor> {
        let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
        self.model.forward(&input, index_pos, &mut self.cache)
    }

    /// Forgets the cached keys and values (candle's cache has no reset: it is rebuilt).
    pub fn clear_kv_cache(&mut self) -> candle_core::Result<()> {
        self.cache = Cache::new(true, DType::F32, &self.config, &Device::Cpu)?;
        Ok(())
    }
}

/// What the directory says about the model, before any weight is read.
pub struct Header {
    pub config: LlamaConfig,
    pub eos_ids: Vec<u32>,
    pub chat_template: Option<String>,
}

pub fn read_header(dir: &Path) -> Result<Header, LoadError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| LoadError::Read { path, source })
    };
    let format = |message: String| LoadError::Format {
        path: dir.to_owned(),
        message,
    };
    let config: LlamaConfig = serde_json::from_str(&read("config.json")?)
        .map_err(|e| format(format!("config.json is not a llama configuration: {e}")))?;
    let eos_ids = match &config.eos_token_id {
        Some(LlamaEosToks::Single(id)) => vec![*id],
        Some(LlamaEosToks::Multiple(ids)) => ids.clone(),
        None => Vec::new(),
    };
    let chat_template = read("tokenizer_config.json")
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v["chat_template"].as_str().map(str::to_owned));
    Ok(Header {
        config,
        eos_ids,
        chat_template,
    })
}

/// Memory of the checkpoint in f32 with a KV cache of `context_length` tokens.
pub fn estimate(config: &LlamaConfig, context_length: usize) -> MemoryEstimate {
    let h = config.hidden_size as u64;
    let heads = config.num_attention_heads.max(1) as u64;
    let kv = (config.num_key_value_heads() as u64) * (h / heads);
    let ffn = config.intermediate_size as u64;
    let vocab = config.vocab_size as u64;
    let per_layer = 2 * h * h + 2 * h * kv + 3 * h * ffn + 2 * h;
    let lm_head = if config.tie_word_embeddings.unwrap_or(false) {
        0
    } else {
        vocab * h
    };
    let parameters = config.num_hidden_layers as u64 * per_layer + vocab * h + lm_head + h;
    let context = context_length as u64;
    let chunk = PREFILL_CHUNK as u64;
    MemoryEstimate {
        weights_bytes: parameters * 4,
        kv_cache_bytes: config.num_hidden_layers as u64 * 2 * context * kv * 4,
        working_bytes: 2 * heads * chunk * context * 4 + chunk * (6 * h + 3 * ffn) * 4 + vocab * 8,
    }
}

/// Reads every `*.safetensors` file of `dir` and builds the model.
pub fn load(dir: &Path, header: &Header) -> Result<Checkpoint, LoadError> {
    let format = |message: String| LoadError::Format {
        path: dir.to_owned(),
        message,
    };
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format("no *.safetensors file in the directory".into()));
    }
    let mut tensors = HashMap::new();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|source| LoadError::Read {
            path: file.clone(),
            source,
        })?;
        let loaded = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| format(format!("{}: {e}", file.display())))?;
        tensors.extend(loaded);
    }
    let config = header.config.clone().into_config(false);
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let model = Llama::load(vb, &config).map_err(|e| format(format!("weights: {e}")))?;
    let cache =
        Cache::new(true, DType::F32, &config, &Device::Cpu).map_err(|e| format(e.to_string()))?;
    Ok(Checkpoint {
        model,
        config,
        cache,
    })
}
