//! Choosing the next token from the model's logits: temperature, top-k, top-p, repetition
//! penalty, and a seed so that the same request gives the same answer.

use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};

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

/// One generation's sampler.
pub struct Sampler {
    processor: LogitsProcessor,
    repetition_penalty: f32,
    repeat_last_n: usize,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("repetition_penalty", &self.repetition_penalty)
            .finish_non_exhaustive()
    }
}

impl Sampler {
    pub fn new(params: &SamplingParams) -> Self {
        let temperature = params.temperature;
        let sampling = if temperature <= 0.0 {
            Sampling::ArgMax
        } else {
            match (params.top_k, params.top_p < 1.0) {
                (0, false) => Sampling::All { temperature },
                (0, true) => Sampling::TopP {
                    p: params.top_p,
                    temperature,
                },
                (k, false) => Sampling::TopK { k, temperature },
                (k, true) => Sampling::TopKThenTopP {
                    k,
                    p: params.top_p,
                    temperature,
                },
            }
        };
        Self {
            processor: LogitsProcessor::from_sampling(params.seed, sampling),
            repetition_penalty: params.repetition_penalty,
            repeat_last_n: params.repeat_last_n,
        }
    }

    /// The next token, given the logits of the last position and every token so far.
    pub fn next(&mut self, logits: &Tensor, context: &[u32]) -> candle_core::Result<u32> {
        let logits = logits.squeeze(0)?.to_dtype(candle_core::DType::F32)?;
        let logits = if self.repetition_penalty == 1.0 || context.is_empty() {
            logits
        } else {
            let start = context.len().saturating_sub(self.repeat_last_n);
            candle_transformers::utils::apply_repeat_penalty(
                &logits,
                self.repetition_penalty,
                &context[start..],
            )?
        };
        self.processor.sample(&logits)
    }
}
