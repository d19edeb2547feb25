//! Loading a model file: what it is, what it will cost in memory (checked against
//! `models.max_memory_mb` before any weight is read), its tokenizer and chat template.

use std::fs::File;
use std::io::{Read, Seek};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::{ModelWeights, MAX_SEQ_LEN};
use tokenizers::Tokenizer;

use super::llama;
use super::load::{LoadError, LoadOptions, MemoryEstimate, ModelInfo};
use super::safetensors::{self, Checkpoint};
use super::template::ChatTemplate;
use super::tokenizer;
use crate::config::Requantize;

/// Prompt tokens fed through the model at once. Bounds the attention scores held in memory
/// during prefill (heads × chunk × context floats) and lets a cancelled request stop early.
pub const PREFILL_CHUNK: usize = 256;

/// A model in memory, ready to run on the CPU.
pub struct Loaded {
    pub weights: Weights,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    /// Ids that end an answer.
    pub end_ids: Vec<u32>,
    pub info: ModelInfo,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Weight formats candle has no SIMD kernel for, on any CPU: generic code runs them about
/// three times slower than Q8_0 (docs/BENCHMARKS.md). Matters only for the files that run on
/// candle: the kernels [`llama`] loads for run Q4_0 and Q4_1 as they are.
const SLOW_FORMATS: [GgmlDType; 3] = [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q5_1];

/// The weights and KV cache of a loaded model, whichever format it came in.
pub enum Weights {
    /// A GGUF llama on `mcp-edge-kernels`.
    Kernels(Box<mcp_edge_kernels::Llama>),
    /// Any other GGUF llama, on candle.
    Gguf(Box<ModelWeights>),
    Safetensors(Box<Checkpoint>),
}

impl Weights {
    /// Runs `tokens` (starting at position `index_pos`) through the model; the logits of the
    /// last one.
    pub fn forward(&mut self, tokens: &[u32], index_pos: usize) -> candle_core::Result<Tensor> {
        match self {
            Weights::Kernels(model) => {
                let logits = model
                    .forward(tokens, index_pos)
                    .map_err(candle_core::Error::Msg)?;
                let vocabulary = logits.len();
                Tensor::from_vec(logits, (1, vocabulary), &Device::Cpu)
            }
            Weights::Gguf(model) => {
                let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
                model.forward(&input, index_pos)
            }
            Weights::Safetensors(model) => model.forward(tokens, index_pos),
        }
    }

    pub fn clear_kv_cache(&mut self) -> candle_core::Result<()> {
        match self {
            Weights::Kernels(model) => {
                model.clear_kv_cache();
                Ok(())
            }
            Weights::Gguf(model) => {
                model.clear_kv_cache();
                Ok(())
            }
            Weights::Safetensors(model) => model.clear_kv_cache(),
        }
    }
}

/// Loads a GGUF file, or a Hugging Face checkpoint when `options.path` is a directory.
pub fn load(options: &LoadOptions) -> Result<Loaded, LoadError> {
    if options.path.is_dir() {
        load_checkpoint(options)
    } else {
        load_gguf(options)
    }
}

/// The name the model is served under: configured, else the file or directory name.
fn served_name(options: &LoadOptions) -> String {
    options.name.clone().unwrap_or_else(|| {
        options
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "local".into())
    })
}

fn check_budget(
    options: &LoadOptions,
    memory: &MemoryEstimate,
    context_length: usize,
) -> Result<(), LoadError> {
    if memory.total_mb() > u64::from(options.max_memory_mb) {
        return Err(LoadError::TooLarge {
            path: options.path.clone(),
            needed_mb: memory.total_mb(),
            limit_mb: options.max_memory_mb,
            detail: memory.detail(context_length),
        });
    }
    Ok(())
}

fn load_checkpoint(options: &LoadOptions) -> Result<Loaded, LoadError> {
    let dir = &options.path;
    let header = safetensors::read_header(dir)?;
    let context_length = options
        .context_length
        .min(header.config.max_position_embeddings);
    let memory = safetensors::estimate(&header.config, context_length);
    check_budget(options, &memory, context_length)?;
    let tokenizer_file = options
        .tokenizer_path
        .clone()
        .unwrap_or_else(|| dir.join("tokenizer.json"));
    let tokenizer = tokenizer::from_file(&tokenizer_file).map_err(LoadError::Tokenizer)?;
    let mut end_ids = tokenizer::end_ids(&tokenizer, None);
    end_ids.extend(&header.eos_ids);
    end_ids.sort_unstable();
    end_ids.dedup();
    let (template, warning) = ChatTemplate::new(header.chat_template.clone());
    if let Some(warning) = warning {
        tracing::warn!(model = %dir.display(), "{warning}");
    }
    let checkpoint = safetensors::load(dir, &header)?;
    Ok(Loaded {
        weights: Weights::Safetensors(Box::new(checkpoint)),
        tokenizer,
        end_ids,
        info: ModelInfo {
            name: served_name(options),
            path: dir.clone(),
            architecture: "llama".into(),
            quantization: "f32".into(),
            context_length,
            memory,
            chat_template: template.source,
            tokenizer: "tokenizer.json",
        },
        template,
    })
}

/// Reads the GGUF header, checks the memory budget, then loads weights, tokenizer and template.
fn load_gguf(options: &LoadOptions) -> Result<Loaded, LoadError> {
    let path = &options.path;
    let read_error = |source| LoadError::Read {
        path: path.clone(),
        source,
    };
    let format_error = |e: candle_core::Error| LoadError::Format {
        path: path.clone(),
        message: e.to_string(),
    };
    let mut file = File::open(path).map_err(read_error)?;
    let content = gguf_file::Content::read(&mut file).map_err(format_error)?;

    let architecture = metadata_string(&content, "general.architecture").unwrap_or_default();
    if architecture != "llama" {
        return Err(LoadError::Architecture {
            path: path.clone(),
            architecture,
        });
    }
    let shape = Shape::of(&content).map_err(|message| LoadError::Format {
        path: path.clone(),
        message,
    })?;
    let context_length = options
        .context_length
        .min(shape.trained_context)
        .min(MAX_SEQ_LEN);
    let unsupported = not_on_the_kernels(&content);
    let native = unsupported.is_none();
    let as_stored = estimate(&content, &shape, context_length, None, native);
    let requantized = estimate(
        &content,
        &shape,
        context_length,
        Some(GgmlDType::Q8_0),
        native,
    );
    let fits = |m: &MemoryEstimate| m.total_mb() <= u64::from(options.max_memory_mb);
    let slow = content
        .tensor_infos
        .values()
        .any(|t| SLOW_FORMATS.contains(&t.ggml_dtype));
    let to_q8_0 = match options.requantize {
        Requantize::None => false,
        Requantize::Q8_0 => slow,
        Requantize::Auto => !native && slow && fits(&requantized),
    };
    if options.requantize == Requantize::Auto && !native && slow && !to_q8_0 {
        tracing::info!(
            needed_mb = requantized.total_mb(),
            "not converting the weights to q8_0 for speed: that would exceed models.max_memory_mb"
        );
    }
    let memory = if to_q8_0 { requantized } else { as_stored };
    check_budget(options, &memory, context_length)?;

    let tokenizer_file = options.tokenizer_path.clone().or_else(|| {
        let beside = path.with_file_name("tokenizer.json");
        beside.is_file().then_some(beside)
    });
    let (tokenizer, tokenizer_source) = match &tokenizer_file {
        Some(file) => (tokenizer::from_file(file), "tokenizer.json"),
        None => (tokenizer::from_gguf(&content), "gguf"),
    };
    let tokenizer = tokenizer.map_err(LoadError::Tokenizer)?;
    let eos_id = content
        .metadata
        .get("tokenizer.ggml.eos_token_id")
        .and_then(|v| v.to_u32().ok());
    let end_ids = tokenizer::end_ids(&tokenizer, eos_id);
    let (template, warning) =
        ChatTemplate::new(metadata_string(&content, "tokenizer.chat_template"));
    if let Some(warning) = warning {
        tracing::warn!(model = %path.display(), "{warning}");
    }

    let stored = dominant_dtype(&content);
    match &unsupported {
        None => {
            tracing::info!(kernel = ?mcp_edge_kernels::kernel(), "running the model on the quantized kernels")
        }
        Some(reason) => tracing::info!(%reason, "running the model on candle"),
    }
    let weights = if to_q8_0 {
        let (content, mut converted) =
            requantized_gguf(&content, &mut file).map_err(format_error)?;
        gguf_weights(content, &mut converted, native)
    } else {
        gguf_weights(content, &mut file, native)
    }
    .map_err(format_error)?;
    let quantization = if to_q8_0 {
        format!("{stored}, run as q8_0")
    } else {
        stored
    };
    Ok(Loaded {
        weights,
        tokenizer,
        end_ids,
        info: ModelInfo {
            name: served_name(options),
            path: path.clone(),
            architecture,
            quantization,
            context_length,
            memory,
            chat_template: template.source,
            tokenizer: tokenizer_source,
        },
        template,
    })
}

/// Why a GGUF file runs on candle rather than on `mcp-edge-kernels`, or `None` when it runs
/// on the kernels: `MCP_EDGE_KERNEL=candle`; a CPU with no vector kernel there (the portable
/// one is not vectorised in the release profile, docs/BENCHMARKS.md), unless
/// `MCP_EDGE_KERNEL=portable` asks for it; or a file the kernels do not run.
fn not_on_the_kernels(content: &gguf_file::Content) -> Option<String> {
    let setting = std::env::var("MCP_EDGE_KERNEL").unwrap_or_default();
    if !["", "candle", "portable"].contains(&setting.as_str()) {
        tracing::warn!(%setting, "MCP_EDGE_KERNEL is neither candle nor portable; ignored");
    }
    if setting == "candle" {
        return Some("MCP_EDGE_KERNEL=candle".into());
    }
    if mcp_edge_kernels::kernel() == mcp_edge_kernels::Kernel::Portable && setting != "portable" {
        return Some(
            "the kernels have no vector code for this CPU (AVX2 and FMA on x86_64)".into(),
        );
    }
    llama::unsupported(content)
}

fn gguf_weights<R: Read + Seek>(
    content: gguf_file::Content,
    reader: &mut R,
    native: bool,
) -> candle_core::Result<Weights> {
    Ok(if native {
        Weights::Kernels(Box::new(llama::load(&content, reader)?))
    } else {
        Weights::Gguf(Box::new(ModelWeights::from_gguf(
            content,
            reader,
            &Device::Cpu,
        )?))
    })
}

/// The dimensions that decide memory use.
#[derive(Debug)]
struct Shape {
    layers: u64,
    embedding: u64,
    heads: u64,
    kv_heads: u64,
    feed_forward: u64,
    vocabulary: u64,
    trained_context: usize,
}

impl Shape {
    fn of(content: &gguf_file::Content) -> Result<Self, String> {
        let get = |key: &str| -> Result<u64, String> {
            content
                .metadata
                .get(key)
                .and_then(|v| v.to_u32().ok())
                .map(u64::from)
                .ok_or_else(|| format!("metadata key {key} is missing"))
        };
        let vocabulary = content
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims().first().copied().unwrap_or(0) as u64)
            .ok_or("tensor token_embd.weight is missing")?;
        Ok(Self {
            layers: get("llama.block_count")?,
            embedding: get("llama.embedding_length")?,
            heads: get("llama.attention.head_count")?.max(1),
            kv_heads: get("llama.attention.head_count_kv")?,
            feed_forward: get("llama.feed_forward_length")?,
            vocabulary,
            trained_context: get("llama.context_length").unwrap_or(MAX_SEQ_LEN as u64) as usize,
        })
    }
}

/// What the model will need; `requantize_to` counts the slow formats as that format, `native`
/// says it runs on [`llama`] (blocks with f32 scales, no f32 copy of the token embedding)
/// rather than on candle.
fn estimate(
    content: &gguf_file::Content,
    shape: &Shape,
    context_length: usize,
    requantize_to: Option<GgmlDType>,
    native: bool,
) -> MemoryEstimate {
    let quantized: u64 = content
        .tensor_infos
        .values()
        .map(|t| {
            let dtype = match requantize_to {
                Some(to) if SLOW_FORMATS.contains(&t.ggml_dtype) => to,
                _ => t.ggml_dtype,
            };
            let elements = t.shape.elem_count() as u64;
            match llama::blocks_of(dtype) {
                Some(blocks) if native => {
                    elements / mcp_edge_kernels::BLOCK as u64 * blocks.loaded_bytes() as u64
                }
                _ => elements / dtype.block_size() as u64 * dtype.type_size() as u64,
            }
        })
        .sum();
    let embedding_f32 = if native {
        0
    } else {
        shape.vocabulary * shape.embedding * 4
    };
    let context = context_length as u64;
    let head_dim = shape.embedding / shape.heads;
    let kv_cache_bytes = shape.layers * 2 * context * shape.kv_heads * head_dim * 4;
    let chunk = PREFILL_CHUNK as u64;
    let attention_scores = 2 * shape.heads * chunk * context * 4;
    let activations = chunk * (6 * shape.embedding + 3 * shape.feed_forward) * 4;
    let rotary = 2 * MAX_SEQ_LEN as u64 * head_dim / 2 * 4;
    let logits = shape.vocabulary * 4 * 2;
    MemoryEstimate {
        weights_bytes: quantized + embedding_f32,
        kv_cache_bytes,
        working_bytes: attention_scores + activations + rotary + logits,
    }
}

/// The model with every tensor in a slow format converted to Q8_0, as an in-memory GGUF file.
/// The conversion is near-lossless: Q8_0 has twice the bits of the 4- and 5-bit formats it
/// replaces, on the same 32-value blocks.
fn requantized_gguf(
    content: &gguf_file::Content,
    file: &mut File,
) -> candle_core::Result<(gguf_file::Content, std::io::Cursor<Vec<u8>>)> {
    converted_gguf(content, file, |tensor| {
        if SLOW_FORMATS.contains(&tensor.dtype()) {
            QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, GgmlDType::Q8_0)
        } else {
            Ok(tensor)
        }
    })
}

/// The model with `convert` applied to every tensor, as an in-memory GGUF file.
pub(super) fn converted_gguf<R: Read + Seek>(
    content: &gguf_file::Content,
    file: &mut R,
    convert: impl Fn(QTensor) -> candle_core::Result<QTensor>,
) -> candle_core::Result<(gguf_file::Content, std::io::Cursor<Vec<u8>>)> {
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        tensors.push((
            name.as_str(),
            convert(content.tensor(file, name, &Device::Cpu)?)?,
        ));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (*k, v)).collect();
    let mut converted = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut converted, &metadata, &tensors)?;
    converted.set_position(0);
    let content = gguf_file::Content::read(&mut converted)?;
    Ok((content, converted))
}

fn metadata_string(content: &gguf_file::Content, key: &str) -> Option<String> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .cloned()
}

/// The weight format holding the most bytes, lower-cased (`q4_1`).
fn dominant_dtype(content: &gguf_file::Content) -> String {
    let mut bytes: std::collections::BTreeMap<String, usize> = Default::default();
    for t in content.tensor_infos.values() {
        *bytes.entry(format!("{:?}", t.ggml_dtype)).or_default() += t.shape.elem_count();
    }
    bytes
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(name, _)| name.to_lowercase())
        .unwrap_or_default()
}
