//! Bytes per telemetry export: batches of 1 and 60 snapshots of a gateway's metrics (after some
//! traffic on every route), encoded as raw JSON (the baseline), lz4 and zstd. Prints a
//! Markdown table.
//!
//! cargo run --release --example telemetry_batch

use std::time::Duration;

use mcp_edge_gateway::config::Compression;
use mcp_edge_gateway::telemetry::export::{encode, Batch, Snapshot, FORMAT};
use mcp_edge_gateway::telemetry::Metrics;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let metrics = Metrics::new();
    let routes = [
        "/mcp",
        "/v1/chat/completions",
        "/v1/mcp/completions",
        "/v1/models",
        "/health",
        "/metrics",
    ];
    let mut snapshots = Vec::new();
    for seq in 1..=60u64 {
        for (i, route) in routes.iter().enumerate() {
            for status in [200, 400, 429] {
                let n = (seq as usize * (i + 1) + status as usize) % 7;
                for _ in 0..n {
                    metrics.observe_request(
                        route,
                        "POST",
                        status,
                        Duration::from_micros(300 * n as u64 + seq),
                    );
                }
            }
        }
        metrics.completion("local", "stop", (40 + seq, 100 + seq));
        metrics.completion("cloud", "length", (12, 256));
        snapshots.push(Snapshot {
            seq,
            taken_ms: 1_795_479_096_000 + seq * 60_000,
            openmetrics: metrics.encode(),
        });
    }
    #[allow(clippy::print_stdout)]
    {
        println!(
            "| snapshots per batch | raw JSON bytes | lz4 bytes | ratio | zstd bytes | ratio |"
        );
        println!("|---|---|---|---|---|---|");
        for count in [1usize, 60] {
            let batch = Batch {
                format: FORMAT.into(),
                gateway_version: env!("CARGO_PKG_VERSION").into(),
                dropped: 0,
                snapshots: snapshots[..count].to_vec(),
            };
            let raw = encode(&batch, Compression::None)?.0.len();
            let lz4 = encode(&batch, Compression::Lz4)?.0.len();
            let zstd = encode(&batch, Compression::Zstd)?.0.len();
            println!(
                "| {count} | {raw} | {lz4} | {:.1}x | {zstd} | {:.1}x |",
                raw as f64 / lz4 as f64,
                raw as f64 / zstd as f64
            );
        }
    }
    Ok(())
}
