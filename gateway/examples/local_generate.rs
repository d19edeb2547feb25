//! One greedy generation on the local model, timed: the gateway side of
//! `gateway/bench/local-model.sh`, on the gateway's defaults (`MCP_EDGE_KERNEL` picks the
//! engine, as in the gateway). Prints one JSON line.
//!
//! cargo run --release --example local_generate -- MODEL.gguf [THREADS] [TOKENS] [PROMPT]

use std::time::Instant;

use mcp_edge_gateway::config::Requantize;
use mcp_edge_gateway::inference::{
    self, ChatMessage, Event, GenerationOptions, LoadOptions, LocalModel, SamplingParams,
};
use tokio_util::sync::CancellationToken;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .ok_or("usage: local_generate MODEL.gguf [THREADS] [TOKENS] [PROMPT]")?;
    let threads: u32 = args.get(1).map_or(Ok(0), |t| t.parse())?;
    let tokens: usize = args.get(2).map_or(Ok(128), |t| t.parse())?;
    let prompt = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "Write a short story about a robot who learns to garden.".into());
    inference::set_threads(threads);

    let started = Instant::now();
    let options = LoadOptions {
        name: None,
        path: path.into(),
        tokenizer_path: None,
        max_memory_mb: 4096,
        context_length: 2048,
        requantize: Requantize::Auto,
    };
    let model = LocalModel::load(&options, 1)?;
    let load_ms = started.elapsed().as_millis();
    let prompt = model.prompt(&[
        ChatMessage::new("system", "You are a helpful assistant."),
        ChatMessage::new("user", prompt),
    ])?;
    let prompt_tokens = prompt.len();
    let prompt_token_ids = prompt.clone();
    let options = GenerationOptions {
        max_tokens: tokens,
        stop: Vec::new(),
        sampling: SamplingParams {
            temperature: 0.0,
            repetition_penalty: 1.0,
            ..SamplingParams::default()
        },
        ignore_eos: true,
    };
    let mut events = model.submit(prompt, options, CancellationToken::new())?;
    let mut text = String::new();
    while let Some(event) = events.recv().await {
        match event {
            Event::Text(piece) => text.push_str(&piece),
            Event::Done(outcome) => {
                let ttft = outcome.time_to_first_token_ms;
                let line = serde_json::json!({
                    "engine": "mcp-gateway",
                    "quantization": model.info().quantization,
                    "threads": threads,
                    "load_ms": load_ms,
                    "prompt_tokens": prompt_tokens,
                    "prompt_token_ids": prompt_token_ids,
                    "ttft_ms": ttft,
                    "prompt_tok_s": prompt_tokens as f64 * 1000.0 / ttft.max(1) as f64,
                    "decode_tok_s": outcome.decode_tokens_per_second,
                    "generated": outcome.completion_tokens,
                    "peak_rss_mib": peak_rss_mib(),
                    "text": text,
                });
                #[allow(clippy::print_stdout)]
                {
                    println!("{line}");
                }
            }
            Event::Failed(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The process's peak resident set (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}
