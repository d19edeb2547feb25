//! Choosing the next token from the model's logits: temperature, top-k, top-p, repetition
//! penalty, and a seed so that the same request gives the same answer.

use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};

use super::request::SamplingParams;

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
