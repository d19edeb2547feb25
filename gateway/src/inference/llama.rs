//! A GGUF llama file read with candle's GGUF reader into [`mcp_edge_kernels::Llama`], which
//! runs it on kernels picked at run time for the CPU, with the weights kept in their stored
//! 4- or 8-bit blocks.
//!
//! Used for GGUF llama models whose matrices are all Q4_0, Q4_1 or Q8_0 and whose vectors are
//! f32 (the reference model among them); other files run on candle's `quantized_llama`
//! (`model.rs` decides, [`unsupported`] says why).

use std::io::{Read, Seek};

use candle_core::quantized::{gguf_file, GgmlDType};
use candle_core::Device;
use mcp_edge_kernels::{GgufBlocks, Hyperparameters, LayerWeights, Llama, QMatrix};

/// The GGUF format of a matrix these kernels run, if they run it.
pub fn blocks_of(dtype: GgmlDType) -> Option<GgufBlocks> {
    match dtype {
        GgmlDType::Q4_0 => Some(GgufBlocks::Q4_0),
        GgmlDType::Q4_1 => Some(GgufBlocks::Q4_1),
        GgmlDType::Q8_0 => Some(GgufBlocks::Q8_0),
        _ => None,
    }
}

/// Why `content` does not run here (and so runs on candle), or `None` when it does.
pub fn unsupported(content: &gguf_file::Content) -> Option<String> {
    let get = |key: &str| content.metadata.get(key).and_then(|v| v.to_u32().ok());
    if get("llama.expert_count").unwrap_or(0) > 1 {
        return Some("mixture of experts".into());
    }
    let (Some(embedding), Some(heads)) = (
        get("llama.embedding_length"),
        get("llama.attention.head_count"),
    ) else {
        return Some("no embedding length or head count".into());
    };
    if heads == 0 {
        return Some("no attention heads".into());
    }
    if get("llama.rope.dimension_count").is_some_and(|d| d != embedding / heads) {
        return Some("rotary embedding over part of a head".into());
    }
    for (name, info) in &content.tensor_infos {
        // A tensor the forward pass would not read (biases, rope frequency factors) changes
        // the arithmetic: such files run on candle, which names what it does not support.
        if !is_read_here(name) {
            return Some(format!("{name} is not a tensor the kernels read"));
        }
        let is_vector = info.shape.rank() == 1;
        if is_vector && info.ggml_dtype != GgmlDType::F32 {
            return Some(format!("{name} is {:?}, not f32", info.ggml_dtype));
        }
        if !is_vector && blocks_of(info.ggml_dtype).is_none() {
            return Some(format!("{name} is {:?}", info.ggml_dtype));
        }
    }
    None
}

/// The tensors [`load`] reads.
fn is_read_here(name: &str) -> bool {
    const LAYER_PARTS: [&str; 9] = [
        "attn_norm",
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_norm",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
    ];
    if ["token_embd.weight", "output.weight", "output_norm.weight"].contains(&name) {
        return true;
    }
    let Some(rest) = name.strip_prefix("blk.") else {
        return false;
    };
    let Some((layer, part)) = rest.split_once('.') else {
        return false;
    };
    layer.parse::<u32>().is_ok()
        && part
            .strip_suffix(".weight")
            .is_some_and(|part| LAYER_PARTS.contains(&part))
}

/// Reads the weights; `content` must have passed [`unsupported`].
pub fn load<R: Read + Seek>(
    content: &gguf_file::Content,
    reader: &mut R,
) -> candle_core::Result<Llama> {
    let get = |key: &str| -> candle_core::Result<usize> {
        let value = content
            .metadata
            .get(key)
            .ok_or_else(|| candle_core::Error::Msg(format!("metadata key {key} is missing")))?
            .to_u32()?;
        Ok(value as usize)
    };
    let get_f32 = |key: &str| content.metadata.get(key).and_then(|v| v.to_f32().ok());
    let hyperparameters = Hyperparameters {
        heads: get("llama.attention.head_count")?,
        kv_heads: get("llama.attention.head_count_kv")?,
        rms_epsilon: get_f32("llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
        rope_base: get_f32("llama.rope.freq_base").unwrap_or(10_000.0),
    };
    let block_count = get("llama.block_count")?;
    let token_embedding = load_matrix(content, reader, "token_embd.weight")?;
    let output = if content.tensor_infos.contains_key("output.weight") {
        Some(load_matrix(content, reader, "output.weight")?)
    } else {
        None
    };
    let output_norm = load_vector(content, reader, "output_norm.weight")?;
    let mut layers = Vec::with_capacity(block_count);
    for i in 0..block_count {
        let name = |part: &str| format!("blk.{i}.{part}.weight");
        layers.push(LayerWeights {
            attention_norm: load_vector(content, reader, &name("attn_norm"))?,
            query: load_matrix(content, reader, &name("attn_q"))?,
            key: load_matrix(content, reader, &name("attn_k"))?,
            value: load_matrix(content, reader, &name("attn_v"))?,
            attention_output: load_matrix(content, reader, &name("attn_output"))?,
            feed_forward_norm: load_vector(content, reader, &name("ffn_norm"))?,
            gate: load_matrix(content, reader, &name("ffn_gate"))?,
            up: load_matrix(content, reader, &name("ffn_up"))?,
            down: load_matrix(content, reader, &name("ffn_down"))?,
        });
    }
    Llama::new(
        hyperparameters,
        token_embedding,
        output,
        output_norm,
        layers,
    )
    .map_err(candle_core::Error::Msg)
}

fn load_matrix<R: Read + Seek>(
    content: &gguf_file::Content,
    reader: &mut R,
    name: &str,
) -> candle_core::Result<QMatrix> {
    let tensor = content.tensor(reader, name, &Device::Cpu)?;
    let format = blocks_of(tensor.dtype())
        .ok_or_else(|| candle_core::Error::Msg(format!("{name} is {:?}", tensor.dtype())))?;
    let (rows, columns) = tensor.shape().dims2()?;
    QMatrix::from_gguf(format, rows, columns, &tensor.data()?)
        .map_err(|e| candle_core::Error::Msg(format!("{name}: {e}")))
}

fn load_vector<R: Read + Seek>(
    content: &gguf_file::Content,
    reader: &mut R,
    name: &str,
) -> candle_core::Result<Vec<f32>> {
    content
        .tensor(reader, name, &Device::Cpu)?
        .dequantize(&Device::Cpu)?
        .to_vec1()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use candle_core::quantized::QTensor;
    use candle_core::Tensor;
    use candle_transformers::models::quantized_llama::ModelWeights;

    use super::*;
    use crate::inference::model::converted_gguf;

    /// The reference model, as `scripts/test.sh` installs it for the integration tests.
    fn reference_model() -> PathBuf {
        let env_file = concat!(env!("CARGO_MANIFEST_DIR"), "/../.cache/test-tools/env");
        let text = std::fs::read_to_string(env_file).unwrap_or_else(|_| {
            panic!("{env_file} is missing: run `bash scripts/test.sh`, which installs the reference model")
        });
        let path = text
            .lines()
            .find_map(|l| l.strip_prefix("MODEL="))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("MODEL missing from {env_file}"));
        assert!(
            path.is_file(),
            "{} is missing; run `bash scripts/test.sh`",
            path.display()
        );
        path
    }

    fn argmax(values: &[f32]) -> u32 {
        let mut best = 0;
        for (i, v) in values.iter().enumerate() {
            if *v > values[best] {
                best = i;
            }
        }
        best as u32
    }

    #[test]
    fn only_the_tensors_the_forward_pass_reads_are_accepted() {
        for name in [
            "token_embd.weight",
            "output_norm.weight",
            "blk.0.attn_q.weight",
            "blk.29.ffn_down.weight",
        ] {
            assert!(is_read_here(name), "{name}");
        }
        for name in [
            "rope_freqs.weight",
            "blk.0.attn_q.bias",
            "blk.x.attn_q.weight",
            "blk.0.ffn_gate_exps.weight",
            "blk.0",
        ] {
            assert!(!is_read_here(name), "{name}");
        }
    }

    /// A copy of the model with every tensor dequantized to f32: the arithmetic both quantized
    /// paths approximate (candle multiplies f32 matrices in f32, without 8-bit activations).
    fn dequantized(content: &gguf_file::Content, file: &mut std::fs::File) -> ModelWeights {
        let (content, mut copy) = converted_gguf(content, file, |tensor| {
            QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, GgmlDType::F32)
        })
        .unwrap();
        ModelWeights::from_gguf(content, &mut copy, &Device::Cpu).unwrap()
    }

    fn candle_forward(model: &mut ModelWeights, tokens: &[u32], position: usize) -> Vec<f32> {
        let input = Tensor::new(tokens, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = model.forward(&input, position).unwrap();
        logits.squeeze(0).unwrap().to_vec1::<f32>().unwrap()
    }

    /// How far `logits` are from `exact`, ignoring a shift of all of them (which sampling
    /// ignores too): the standard deviation of the differences.
    fn error(logits: &[f32], exact: &[f32]) -> f32 {
        let differences: Vec<f32> = logits.iter().zip(exact).map(|(a, b)| a - b).collect();
        let mean = differences.iter().sum::<f32>() / differences.len() as f32;
        let variance = differences
            .iter()
            .map(|d| (d - mean) * (d - mean))
            .sum::<f32>()
            / differences.len() as f32;
        variance.sqrt()
    }

    /// The same file on candle's `quantized_llama` as stored (8-bit activations too, in
    /// candle's generic Q4_1 code) and dequantized to f32: the same greedy tokens as candle's,
    /// and logits as close to the f32 model's as candle's are.
    #[test]
    fn the_kernels_compute_what_candle_computes_on_the_reference_model() {
        let path = reference_model();
        let mut file = std::fs::File::open(&path).unwrap();
        let content = gguf_file::Content::read(&mut file).unwrap();
        assert_eq!(unsupported(&content), None);
        let mut ours = load(&content, &mut file).unwrap();
        let mut exact = dequantized(&content, &mut file);
        let mut candle = ModelWeights::from_gguf(content, &mut file, &Device::Cpu).unwrap();

        // A chat prompt's shape (ids picked by hand; 1 and 2 are <|im_start|> and <|im_end|>).
        let mut tokens: Vec<u32> = vec![
            1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198,
        ];
        let mut position = 0;
        for step in 0..8 {
            let input = &tokens[position..];
            let mine = ours.forward(input, position).unwrap();
            let theirs = candle_forward(&mut candle, input, position);
            let truth = candle_forward(&mut exact, input, position);
            assert_eq!(mine.len(), theirs.len());
            assert_eq!(argmax(&mine), argmax(&theirs), "step {step}");
            let (our_error, their_error) = (error(&mine, &truth), error(&theirs, &truth));
            eprintln!("step {step}: error from f32 {our_error:.3}, candle's {their_error:.3}");
            assert!(
                our_error <= 1.5 * their_error,
                "step {step}: logits {our_error} from the f32 model's, candle's {their_error}"
            );
            position = tokens.len();
            tokens.push(argmax(&mine));
        }
        eprintln!("answer {tokens:?}");

        // Going back (a new conversation over a cached prefix) gives the same logits again.
        let again = ours.forward(&tokens[3..5], 3).unwrap();
        let fresh = {
            ours.clear_kv_cache();
            ours.forward(&tokens[..5], 0).unwrap()
        };
        assert_eq!(argmax(&again), argmax(&fresh));
        assert!(
            ours.forward(&[1], 99).is_err(),
            "a position past the cache is refused"
        );
        assert!(
            ours.forward(&[1_000_000], 5).is_err(),
            "a token outside the vocabulary is refused"
        );
    }
}
