//! Durable enqueue rate of the offline queue store: N completion requests of a realistic size
//! enqueued one by one (each durable before the next), in a directory on the disk under test.
//! Prints one JSON line: rate, and the zstd ratio of the payloads.
//!
//! cargo run --release --example queue_enqueue -- DIR [N]

use std::time::Instant;

use mcp_edge_gateway::config::Compression;
use mcp_edge_gateway::queue::{Overflow, Store};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::path::PathBuf::from(args.first().ok_or("usage: queue_enqueue DIR [N]")?);
    let n: usize = args.get(1).map_or(Ok(2_000), |s| s.parse())?;
    let path = dir.join(format!("bench-{}.sqlite", std::process::id()));
    let mut store = Store::open(&path, n as u64 + 1, Overflow::Reject, Compression::Zstd)?;
    let started = Instant::now();
    for i in 0..n {
        let request = json!({
            "model": "gpt-4o-mini",
            "messages": [
                { "role": "system", "content": "You are the maintenance assistant of an edge device in a water pumping station." },
                { "role": "user", "content": format!("Pump {i}: vibration 4.{i} mm/s, temperature {}.{} C, pressure 3.2 bar, running 1724 h since service. Is maintenance due?", 40 + i % 20, i % 10) }
            ],
            "max_tokens": 256,
            "temperature": 0.2,
            "mcp_edge": { "device": "edge-pi-07", "site": "north-7", "sequence": i }
        });
        store.enqueue("completion", "cloud", &request)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let depth = store.depth()?;
    let raw = store.raw_bytes()?;
    #[allow(clippy::print_stdout)] // The benchmark's answer.
    {
        println!(
            "{}",
            json!({
                "enqueued": n,
                "seconds": elapsed,
                "per_second": n as f64 / elapsed,
                "raw_bytes": raw,
                "stored_bytes": depth.queued_bytes,
                "zstd_ratio": raw as f64 / depth.queued_bytes.max(1) as f64,
            })
        );
    }
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}
