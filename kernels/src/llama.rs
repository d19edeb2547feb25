//! The llama architecture's forward pass on [`crate::quantized`]: the weights stay in their
//! 4- or 8-bit blocks (the token embedding too, dequantized a row at a time), the KV cache is
//! kept per layer and grows in place, and a step allocates only its working buffers.
//!
//! The arithmetic is candle's `quantized_llama` and llama.cpp's: RMS norm, the interleaved
//! rotary embedding GGUF llama weights are stored for, grouped-query attention, SiLU-gated
//! feed-forward, 8-bit activations into every matrix product.

use rayon::prelude::*;

use crate::quantized::{self, QMatrix, QVector};

/// The hyperparameters the weights do not say themselves.
#[derive(Debug, Clone, Copy)]
pub struct Hyperparameters {
    pub heads: usize,
    pub kv_heads: usize,
    pub rms_epsilon: f32,
    pub rope_base: f32,
}

/// One transformer block's weights.
#[derive(Debug)]
pub struct LayerWeights {
    pub attention_norm: Vec<f32>,
    pub query: QMatrix,
    pub key: QMatrix,
    pub value: QMatrix,
    pub attention_output: QMatrix,
    pub feed_forward_norm: Vec<f32>,
    pub gate: QMatrix,
    pub up: QMatrix,
    pub down: QMatrix,
}

#[derive(Debug)]
struct Layer {
    weights: LayerWeights,
    /// Keys and values of every position so far, `kv_heads × head_dimension` values each.
    keys: Vec<f32>,
    values: Vec<f32>,
}

/// The attention heads' shape.
#[derive(Debug, Clone, Copy)]
struct Heads {
    /// Query heads.
    count: usize,
    /// Key/value heads, each shared by `count / kv` query heads.
    kv: usize,
    /// Values per head.
    size: usize,
}

/// A loaded model and its KV cache.
#[derive(Debug)]
pub struct Llama {
    heads: Heads,
    rms_epsilon: f32,
    rope_base: f32,
    token_embedding: QMatrix,
    /// The output projection; the token embedding when the model ties them.
    output: Option<QMatrix>,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
}

impl Llama {
    /// The model from its parts; every matrix and norm is checked against the token
    /// embedding's width and the head counts, so that a malformed file is an error here rather
    /// than a wrong index later.
    pub fn new(
        hyperparameters: Hyperparameters,
        token_embedding: QMatrix,
        output: Option<QMatrix>,
        output_norm: Vec<f32>,
        layers: Vec<LayerWeights>,
    ) -> Result<Self, String> {
        let Hyperparameters {
            heads,
            kv_heads,
            rms_epsilon,
            rope_base,
        } = hyperparameters;
        let embedding = token_embedding.columns();
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || !embedding.is_multiple_of(heads)
        {
            return Err(format!(
                "{heads} heads and {kv_heads} key/value heads do not divide {embedding} values"
            ));
        }
        let head_dimension = embedding / heads;
        if !head_dimension.is_multiple_of(2) {
            return Err(format!(
                "heads of {head_dimension} values cannot be rotated in pairs"
            ));
        }
        let kv_dimension = kv_heads * head_dimension;
        let check = |name: &str, matrix: &QMatrix, rows: usize, columns: usize| {
            if (matrix.rows(), matrix.columns()) == (rows, columns) {
                Ok(())
            } else {
                Err(format!(
                    "{name} is {}x{}, expected {rows}x{columns}",
                    matrix.rows(),
                    matrix.columns()
                ))
            }
        };
        let check_norm = |name: &str, norm: &[f32]| {
            if norm.len() == embedding {
                Ok(())
            } else {
                Err(format!(
                    "{name} has {} values, expected {embedding}",
                    norm.len()
                ))
            }
        };
        if let Some(output) = &output {
            check("the output", output, output.rows(), embedding)?;
        }
        check_norm("the output norm", &output_norm)?;
        for (i, l) in layers.iter().enumerate() {
            let feed_forward = l.gate.rows();
            let name = |part: &str| format!("layer {i}'s {part}");
            check_norm(&name("attention norm"), &l.attention_norm)?;
            check_norm(&name("feed-forward norm"), &l.feed_forward_norm)?;
            check(&name("query"), &l.query, embedding, embedding)?;
            check(&name("key"), &l.key, kv_dimension, embedding)?;
            check(&name("value"), &l.value, kv_dimension, embedding)?;
            check(
                &name("attention output"),
                &l.attention_output,
                embedding,
                embedding,
            )?;
            check(&name("gate"), &l.gate, feed_forward, embedding)?;
            check(&name("up"), &l.up, feed_forward, embedding)?;
            check(&name("down"), &l.down, embedding, feed_forward)?;
        }
        let layers = layers
            .into_iter()
            .map(|weights| Layer {
                weights,
                keys: Vec::new(),
                values: Vec::new(),
            })
            .collect();
        Ok(Self {
            heads: Heads {
                count: heads,
                kv: kv_heads,
                size: head_dimension,
            },
            rms_epsilon,
            rope_base,
            token_embedding,
            output,
            output_norm,
            layers,
        })
    }

    /// Forgets every cached position.
    pub fn clear_kv_cache(&mut self) {
        for layer in &mut self.layers {
            layer.keys = Vec::new();
            layer.values = Vec::new();
        }
    }

    /// Runs `tokens`, the first at position `position`, through the model (the cache keeps
    /// the positions before it and drops any after); the logits of the last token.
    pub fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, String> {
        let n = tokens.len();
        let dimension = self.token_embedding.columns();
        let heads = self.heads;
        let kv_dimension = heads.kv * heads.size;
        let vocabulary = self.token_embedding.rows();
        if n == 0 {
            return Err("no tokens to run".into());
        }
        if let Some(layer) = self.layers.first() {
            if layer.keys.len() < position * kv_dimension {
                return Err(format!(
                    "position {position} is past the {} cached",
                    layer.keys.len() / kv_dimension
                ));
            }
        }
        let mut x = vec![0f32; n * dimension];
        for (&token, row) in tokens.iter().zip(x.chunks_exact_mut(dimension)) {
            if token as usize >= vocabulary {
                return Err(format!(
                    "token {token} is outside the vocabulary of {vocabulary}"
                ));
            }
            self.token_embedding.row(token as usize, row);
        }
        let rope = Rope::new(position, n, heads.size, self.rope_base);
        let feed_forward = self.layers.first().map_or(0, |l| l.weights.gate.rows());
        let mut normed = vec![0f32; n * dimension];
        let mut inputs: Vec<QVector> = (0..n).map(|_| QVector::default()).collect();
        let mut queries = vec![0f32; n * dimension];
        let mut keys = vec![0f32; n * kv_dimension];
        let mut values = vec![0f32; n * kv_dimension];
        let mut attended = vec![0f32; n * dimension];
        let mut projected = vec![0f32; n * dimension];
        let mut gates = vec![0f32; n * feed_forward];
        let mut ups = vec![0f32; n * feed_forward];
        for layer in &mut self.layers {
            rms_norm(
                &x,
                &layer.weights.attention_norm,
                self.rms_epsilon,
                &mut normed,
            );
            quantize_rows(&normed, dimension, &mut inputs);
            project(
                &mut [
                    (&layer.weights.query, &mut queries[..]),
                    (&layer.weights.key, &mut keys[..]),
                    (&layer.weights.value, &mut values[..]),
                ],
                &inputs,
            );
            rope.apply(&mut queries, heads.size);
            rope.apply(&mut keys, heads.size);
            layer.keys.truncate(position * kv_dimension);
            layer.keys.extend_from_slice(&keys);
            layer.values.truncate(position * kv_dimension);
            layer.values.extend_from_slice(&values);
            attend(
                heads,
                &queries,
                &layer.keys,
                &layer.values,
                position,
                &mut attended,
            );
            quantize_rows(&attended, dimension, &mut inputs);
            project(
                &mut [(&layer.weights.attention_output, &mut projected[..])],
                &inputs,
            );
            add(&mut x, &projected);

            rms_norm(
                &x,
                &layer.weights.feed_forward_norm,
                self.rms_epsilon,
                &mut normed,
            );
            quantize_rows(&normed, dimension, &mut inputs);
            project(
                &mut [
                    (&layer.weights.gate, &mut gates[..]),
                    (&layer.weights.up, &mut ups[..]),
                ],
                &inputs,
            );
            for (gate, up) in gates.iter_mut().zip(&ups) {
                *gate = *gate / (1.0 + (-*gate).exp()) * up;
            }
            quantize_rows(&gates, feed_forward, &mut inputs);
            project(&mut [(&layer.weights.down, &mut projected[..])], &inputs);
            add(&mut x, &projected);
        }
        let last = &x[(n - 1) * dimension..];
        let mut normed_last = vec![0f32; dimension];
        rms_norm(last, &self.output_norm, self.rms_epsilon, &mut normed_last);
        let mut input = QVector::default();
        input.quantize(&normed_last);
        let output = self.output.as_ref().unwrap_or(&self.token_embedding);
        let mut logits = vec![0f32; output.rows()];
        quantized::matvec(output, &input, &mut logits);
        Ok(logits)
    }
}

/// Causal grouped-query attention of the new tokens' queries over every cached position.
fn attend(
    heads: Heads,
    queries: &[f32],
    keys: &[f32],
    values: &[f32],
    position: usize,
    out: &mut [f32],
) {
    let head_dimension = heads.size;
    let kv_dimension = heads.kv * head_dimension;
    let group = heads.count / heads.kv;
    let scale = 1.0 / (head_dimension as f32).sqrt();
    out.par_chunks_mut(head_dimension)
        .zip(queries.par_chunks(head_dimension))
        .enumerate()
        .for_each(|(i, (out, query))| {
            let (token, head) = (i / heads.count, i % heads.count);
            let offset = head / group * head_dimension;
            let seen = position + token + 1;
            let mut weights: Vec<f32> = (0..seen)
                .map(|p| {
                    let key = &keys[p * kv_dimension + offset..][..head_dimension];
                    scale * query.iter().zip(key).map(|(q, k)| q * k).sum::<f32>()
                })
                .collect();
            let max = weights.iter().fold(f32::NEG_INFINITY, |m, w| m.max(*w));
            let mut total = 0.0;
            for w in &mut weights {
                *w = (*w - max).exp();
                total += *w;
            }
            out.fill(0.0);
            for (p, w) in weights.iter().enumerate() {
                let value = &values[p * kv_dimension + offset..][..head_dimension];
                for (o, v) in out.iter_mut().zip(value) {
                    *o += w / total * v;
                }
            }
        });
}

/// Rotary embedding angles for the positions of one step.
struct Rope {
    /// Per position, per pair of values: (cos, sin).
    angles: Vec<(f32, f32)>,
}

impl Rope {
    fn new(first: usize, count: usize, head_dimension: usize, base: f32) -> Self {
        let pairs = head_dimension / 2;
        let mut angles = Vec::with_capacity(count * pairs);
        for position in first..first + count {
            for i in 0..pairs {
                let frequency = 1.0 / base.powf((2 * i) as f32 / head_dimension as f32);
                let (sin, cos) = (position as f32 * frequency).sin_cos();
                angles.push((cos, sin));
            }
        }
        Self { angles }
    }

    /// Rotates each head of each token's vector (pairs 2i, 2i+1: GGUF llama's layout).
    fn apply(&self, vectors: &mut [f32], head_dimension: usize) {
        let pairs = head_dimension / 2;
        let tokens = self.angles.len() / pairs;
        let per_token = vectors.len() / tokens;
        for (token, vector) in vectors.chunks_exact_mut(per_token).enumerate() {
            let angles = &self.angles[token * pairs..(token + 1) * pairs];
            for head in vector.chunks_exact_mut(head_dimension) {
                for (pair, &(cos, sin)) in head.chunks_exact_mut(2).zip(angles) {
                    let (a, b) = (pair[0], pair[1]);
                    pair[0] = a * cos - b * sin;
                    pair[1] = a * sin + b * cos;
                }
            }
        }
    }
}

fn rms_norm(x: &[f32], weight: &[f32], epsilon: f32, out: &mut [f32]) {
    let dimension = weight.len();
    for (x, out) in x
        .chunks_exact(dimension)
        .zip(out.chunks_exact_mut(dimension))
    {
        let mean_square = x.iter().map(|v| v * v).sum::<f32>() / dimension as f32;
        let scale = 1.0 / (mean_square + epsilon).sqrt();
        for ((o, v), w) in out.iter_mut().zip(x).zip(weight) {
            *o = v * scale * w;
        }
    }
}

fn quantize_rows(values: &[f32], width: usize, out: &mut [QVector]) {
    for (row, q) in values.chunks_exact(width).zip(out.iter_mut()) {
        q.quantize(row);
    }
}

/// Each matrix times each token's input: one parallel pass for a single token, a row-major
/// pass per matrix for a prompt.
fn project(products: &mut [(&QMatrix, &mut [f32])], inputs: &[QVector]) {
    if let [input] = inputs {
        quantized::matvecs(products, input);
    } else {
        for (matrix, out) in products.iter_mut() {
            quantized::matmul(matrix, inputs, out);
        }
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (x, y) in x.iter_mut().zip(y) {
        *x += y;
    }
}
