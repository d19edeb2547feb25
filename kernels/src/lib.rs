//! The local model's arithmetic, without candle: matrix × vector kernels on GGUF's quantized
//! blocks ([`quantized`]), picked at run time for the CPU, and the llama forward pass over
//! them ([`llama`]). The gateway reads the model file and hands the matrices over
//! (`gateway/src/inference/llama.rs`); docs/BENCHMARKS.md has what this is measured against.
//!
//! A crate of its own so that it is built at full optimisation in every profile, while the
//! gateway's own code is built for size (the workspace's Cargo.toml).

pub mod llama;
pub mod quantized;

pub use llama::{Hyperparameters, LayerWeights, Llama};
pub use quantized::{kernel, GgufBlocks, Kernel, QMatrix, QVector, BLOCK};
