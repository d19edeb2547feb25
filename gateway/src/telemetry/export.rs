//! Pushing metrics to collectors: every `export_interval_seconds` a snapshot of `/metrics` is
//! taken and queued for each endpoint (bounded, oldest dropped first and counted); everything
//! queued goes out as one compressed batch; an endpoint that fails is retried with exponential
//! backoff and jitter, its snapshots kept meanwhile. The wire format is in docs/TELEMETRY.md;
//! [`decode`] reads it back.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Metrics;
use crate::compression::{zstd_decode, zstd_encode};
use crate::config::{Compression, TelemetryConfig};
use crate::memory::{Budget, Reservation};
use crate::power::Pace;

/// `Content-Type` of a batch.
pub const CONTENT_TYPE: &str = "application/vnd.mcp-edge.telemetry+json";
/// `format` of a batch; changes only with an incompatible schema.
pub const FORMAT: &str = "mcp-edge-telemetry/1";
/// Snapshots kept per endpoint while it is unreachable: a day at the default interval.
pub const MAX_BUFFERED: usize = 1_440;
/// Longest pause between attempts at a failing endpoint.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// Longest wait for one POST.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// One batch as it travels (before compression).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub format: String,
    pub gateway_version: String,
    /// Snapshots dropped for this endpoint because the buffer was full, since the start.
    pub dropped: u64,
    pub snapshots: Vec<Snapshot>,
}

/// The metrics at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// 1, 2, 3, ... from the gateway's start; gaps mean dropped snapshots.
    pub seq: u64,
    /// Unix time in milliseconds.
    pub taken_ms: u64,
    /// The `/metrics` exposition (OpenMetrics text).
    pub openmetrics: String,
}

/// Reads a batch from its body and `Content-Encoding` (`zstd`, `lz4` or `identity`).
pub fn decode(content_encoding: &str, body: &[u8]) -> Result<Batch, String> {
    let raw = match content_encoding {
        "zstd" => zstd_decode(body)?,
        "lz4" => {
            let mut raw = Vec::new();
            lz4_flex::frame::FrameDecoder::new(body)
                .read_to_end(&mut raw)
                .map_err(|e| format!("lz4: {e}"))?;
            raw
        }
        "identity" | "" => body.to_vec(),
        other => return Err(format!("unknown content encoding {other}")),
    };
    serde_json::from_slice(&raw).map_err(|e| format!("not a telemetry batch: {e}"))
}

/// The body and `Content-Encoding` for a batch.
pub fn encode(batch: &Batch, compression: Compression) -> Result<(Vec<u8>, &'static str), String> {
    let raw = serde_json::to_vec(batch).map_err(|e| e.to_string())?;
    Ok(match compression {
        Compression::None => (raw, "identity"),
        Compression::Zstd => (zstd_encode(&raw, 9)?, "zstd"),
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(&raw).map_err(|e| e.to_string())?;
            (encoder.finish().map_err(|e| e.to_string())?, "lz4")
        }
    })
}

/// One collector and what waits for it.
struct Endpoint {
    url: String,
    pending: VecDeque<Held>,
    dropped: u64,
    failures: u32,
    /// Ticks to skip before the next attempt.
    wait_ticks: u64,
}

/// A snapshot waiting for one collector, and its share of `memory.telemetry_buffer_kb`.
struct Held {
    snapshot: Snapshot,
    _memory: Reservation,
}

impl Endpoint {
    /// Keeps `snapshot` for this collector: the oldest ones make room when the count or the
    /// memory budget is at its limit, and a snapshot the budget cannot hold even alone is
    /// dropped itself. Each one dropped is counted in the batch's `dropped`.
    fn keep(&mut self, snapshot: Snapshot, budget: &Arc<Budget>) {
        if self.pending.len() == MAX_BUFFERED {
            self.pending.pop_front();
            self.dropped += 1;
        }
        let size = snapshot.openmetrics.len() as u64;
        loop {
            if let Some(memory) = budget.reserve(size) {
                self.pending.push_back(Held {
                    snapshot,
                    _memory: memory,
                });
                return;
            }
            self.dropped += 1;
            if self.pending.pop_front().is_none() {
                return;
            }
        }
    }
}

/// Runs the export loop until `stop`; does nothing without endpoints. A snapshot is taken
/// every interval, stretched by `pace` in low-power.
pub async fn run(
    config: TelemetryConfig,
    metrics: Arc<Metrics>,
    pace: Arc<Pace>,
    budget: Arc<Budget>,
    stop: CancellationToken,
) {
    if config.endpoints.is_empty() {
        return;
    }
    crate::tls::install_client_provider();
    let client = match reqwest::Client::builder().timeout(SEND_TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            warn!(error = %e, "telemetry export disabled: cannot set up the HTTP client");
            return;
        }
    };
    let interval = Duration::from_secs(u64::from(config.export_interval_seconds));
    let mut endpoints: Vec<Endpoint> = config
        .endpoints
        .iter()
        .map(|url| Endpoint {
            url: url.clone(),
            pending: VecDeque::new(),
            dropped: 0,
            failures: 0,
            wait_ticks: 0,
        })
        .collect();
    let mut seq = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(pace.stretch(interval)) => {}
            _ = stop.cancelled() => return,
        }
        seq += 1;
        let snapshot = Snapshot {
            seq,
            taken_ms: now_ms(),
            openmetrics: metrics.encode(),
        };
        for endpoint in &mut endpoints {
            endpoint.keep(snapshot.clone(), &budget);
            if endpoint.wait_ticks > 0 {
                endpoint.wait_ticks -= 1;
                continue;
            }
            send(&client, endpoint, config.compression, interval).await;
        }
    }
}

async fn send(
    client: &reqwest::Client,
    endpoint: &mut Endpoint,
    compression: Compression,
    interval: Duration,
) {
    let batch = Batch {
        format: FORMAT.into(),
        gateway_version: crate::version().into(),
        dropped: endpoint.dropped,
        snapshots: endpoint
            .pending
            .iter()
            .map(|held| held.snapshot.clone())
            .collect(),
    };
    let (body, encoding) = match encode(&batch, compression) {
        Ok(encoded) => encoded,
        Err(e) => {
            warn!(error = %e, "cannot encode a telemetry batch");
            return;
        }
    };
    let sent = client
        .post(&endpoint.url)
        .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
        .header(http::header::CONTENT_ENCODING, encoding)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => {
            debug!(endpoint = %endpoint.url, snapshots = batch.snapshots.len(), "telemetry exported");
            endpoint.pending.clear();
            endpoint.failures = 0;
        }
        outcome => {
            let why = match outcome {
                Ok(response) => format!("answered {}", response.status()),
                Err(e) => format!("unreachable: {e}"),
            };
            endpoint.failures += 1;
            endpoint.wait_ticks = backoff_ticks(endpoint.failures, interval);
            warn!(
                endpoint = %endpoint.url,
                failures = endpoint.failures,
                buffered = endpoint.pending.len(),
                retry_in_ticks = endpoint.wait_ticks,
                "telemetry export failed ({why}); keeping the snapshots"
            );
        }
    }
}

/// Intervals to skip after `failures` failures in a row: 0, 2, 6, 14, ... (2^n − 2), up to
/// `MAX_BACKOFF`, plus 0 or 1 of jitter so that a fleet does not retry in step.
fn backoff_ticks(failures: u32, interval: Duration) -> u64 {
    let cap = (MAX_BACKOFF.as_secs() / interval.as_secs().max(1)).max(1);
    let base = (1u64 << failures.min(16)).saturating_sub(2);
    let jitter = u64::from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            % 2,
    );
    (base + jitter).min(cap)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_decodes_to_the_same_batch() {
        let batch = Batch {
            format: FORMAT.into(),
            gateway_version: "0.1.0".into(),
            dropped: 2,
            snapshots: vec![Snapshot {
                seq: 3,
                taken_ms: 1,
                openmetrics: "# EOF\n".into(),
            }],
        };
        for compression in [Compression::None, Compression::Zstd, Compression::Lz4] {
            let (body, encoding) = encode(&batch, compression).unwrap();
            assert_eq!(decode(encoding, &body).unwrap(), batch, "{encoding}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let second = Duration::from_secs(1);
        assert!(backoff_ticks(1, second) <= 1);
        assert!((6..=7).contains(&backoff_ticks(3, second)));
        assert!(backoff_ticks(30, second) <= 600);
    }
}
