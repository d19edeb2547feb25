//! Sensor stream analytics: configured sensor readings (`[[analytics.streams]]`) sampled every
//! `analytics.sample_interval_ms` (stretched by the power governor in low-power), each scored
//! on the device by its own [`detector::Detector`]; an anomaly is logged, counted, kept among
//! the recent ones, handed to whoever listens (the MCP side turns it into resource updates of
//! `device://alerts` and log notifications) and sent as a cloud alert ([`alert`]), queued
//! while the cloud cannot be reached.
//!
//! - [`sensor`]: which reading a stream samples.
//! - [`detector`]: the robust online z-score.
//! - [`alert`]: the alert's POST and its place in the offline queue.

pub mod alert;
pub mod detector;
pub mod sensor;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use alert::AlertSender;
pub use sensor::Sensor;

use crate::config::{AnalyticsConfig, StreamConfig};
use crate::device::SystemRoot;
use crate::power::Pace;
use crate::queue::OfflineQueue;
use crate::telemetry::Metrics;
use detector::Detector;

/// Recent anomalies kept for `sensor_anomalies` and `device://alerts`, across all streams.
pub const RECENT_ANOMALIES: usize = 100;

/// One sample that scored beyond its stream's threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// 1, 2, 3, ... from the gateway's start.
    pub seq: u64,
    pub stream: String,
    pub sensor: String,
    pub unit: &'static str,
    pub value: f64,
    /// What the value was judged against.
    pub baseline: f64,
    pub spread: f64,
    /// `(value - baseline) / spread`.
    pub score: f64,
    pub threshold: f64,
    /// Unix time in milliseconds.
    pub at_ms: u64,
}

/// One stream as `sensor_streams` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    pub name: String,
    pub sensor: String,
    pub unit: Option<&'static str>,
    /// `warming up`, `scoring` or `no reading` (see `error`).
    pub state: &'static str,
    pub samples: u64,
    pub value: Option<f64>,
    pub baseline: Option<f64>,
    pub spread: Option<f64>,
    /// The last sample's score (none while warming up).
    pub score: Option<f64>,
    pub threshold: f64,
    pub anomalies: u64,
    /// Why the last read failed, if it did.
    pub error: Option<String>,
}

#[derive(Debug)]
struct Stream {
    config: StreamConfig,
    sensor: Sensor,
    detector: Detector,
    unit: Option<&'static str>,
    value: Option<f64>,
    score: Option<f64>,
    anomalies: u64,
    error: Option<String>,
}

/// The seed's `StreamProcessor`: every configured stream, its detector and the recent
/// anomalies. Cheap to clone; clones share one state.
#[derive(Debug, Clone)]
pub struct StreamProcessor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: SystemRoot,
    interval: Duration,
    streams: Mutex<Vec<Stream>>,
    recent: Mutex<VecDeque<Anomaly>>,
    seq: AtomicU64,
    events: broadcast::Sender<Anomaly>,
    metrics: Arc<Metrics>,
}

impl StreamProcessor {
    /// The streams of `[analytics]` (already validated), read under `root`.
    pub fn new(config: &AnalyticsConfig, root: SystemRoot, metrics: Arc<Metrics>) -> Self {
        let streams = config
            .streams
            .iter()
            .filter_map(|s| {
                // Validation has parsed every name; a stream that slipped through is skipped.
                let sensor = s.sensor.parse().ok()?;
                Some(Stream {
                    config: s.clone(),
                    sensor,
                    detector: Detector::new(s),
                    unit: None,
                    value: None,
                    score: None,
                    anomalies: 0,
                    error: None,
                })
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                root,
                interval: Duration::from_millis(config.sample_interval_ms),
                streams: Mutex::new(streams),
                recent: Mutex::default(),
                seq: AtomicU64::new(0),
                events: broadcast::channel(RECENT_ANOMALIES).0,
                metrics,
            }),
        }
    }

    /// Whether any stream is configured.
    pub fn is_empty(&self) -> bool {
        self.streams_lock().is_empty()
    }

    /// Anomalies as they happen, for the MCP notifications.
    pub fn subscribe(&self) -> broadcast::Receiver<Anomaly> {
        self.inner.events.subscribe()
    }

    /// Reads and scores every stream once; returns the anomalies found.
    pub fn sample(&self) -> Vec<Anomaly> {
        let mut found = Vec::new();
        let mut streams = self.streams_lock();
        for stream in streams.iter_mut() {
            let reading = match stream.sensor.read(&self.inner.root) {
                Ok(reading) => reading,
                Err(e) => {
                    if stream.error.as_ref() != Some(&e) {
                        warn!(stream = %stream.config.name, "sensor stream has no reading: {e}");
                    }
                    stream.error = Some(e);
                    continue;
                }
            };
            if stream.error.take().is_some() {
                info!(stream = %stream.config.name, "sensor stream reads again");
            }
            let score = stream.detector.observe(reading.value);
            stream.unit = Some(reading.unit);
            stream.value = Some(reading.value);
            stream.score = score.z;
            let name = &stream.config.name;
            self.inner
                .metrics
                .sensor_sample(name, reading.value, score.z);
            if !score.anomaly {
                continue;
            }
            stream.anomalies += 1;
            self.inner.metrics.sensor_anomaly(name);
            found.push(Anomaly {
                seq: self.next_seq(),
                stream: name.clone(),
                sensor: stream.sensor.to_string(),
                unit: reading.unit,
                value: reading.value,
                baseline: score.baseline,
                spread: score.spread,
                score: score.z.unwrap_or_default(),
                threshold: stream.config.threshold,
                at_ms: now_ms(),
            });
        }
        drop(streams);
        let mut recent = self.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
        for anomaly in &found {
            if recent.len() == RECENT_ANOMALIES {
                recent.pop_front();
            }
            recent.push_back(anomaly.clone());
        }
        found
    }

    /// Samples every interval (stretched by `pace`) until `stop`; each anomaly is logged,
    /// announced to [`StreamProcessor::subscribe`]rs and, with `alerts`, sent or queued.
    pub async fn run(
        self,
        pace: Arc<Pace>,
        alerts: Option<(AlertSender, OfflineQueue)>,
        stop: CancellationToken,
    ) {
        if self.is_empty() {
            return;
        }
        info!(
            streams = self.streams_lock().len(),
            interval_ms = self.inner.interval.as_millis() as u64,
            "sensor stream analytics started"
        );
        loop {
            tokio::select! {
                _ = tokio::time::sleep(pace.stretch(self.inner.interval)) => {}
                _ = stop.cancelled() => return,
            }
            // sysfs reads do not block for long, but they are file system calls.
            let processor = self.clone();
            let Ok(found) = tokio::task::spawn_blocking(move || processor.sample()).await else {
                continue;
            };
            for anomaly in found {
                warn!(
                    stream = %anomaly.stream,
                    sensor = %anomaly.sensor,
                    value = anomaly.value,
                    baseline = anomaly.baseline,
                    score = anomaly.score,
                    "sensor anomaly"
                );
                let _ = self.inner.events.send(anomaly.clone());
                if let Some((sender, queue)) = &alerts {
                    sender.raise(&anomaly, queue, &self.inner.metrics).await;
                }
            }
        }
    }

    /// Every stream's state.
    pub fn streams(&self) -> Vec<StreamStatus> {
        self.streams_lock()
            .iter()
            .map(|s| StreamStatus {
                name: s.config.name.clone(),
                sensor: s.sensor.to_string(),
                unit: s.unit,
                state: if s.error.is_some() {
                    "no reading"
                } else if s.detector.warming_up() {
                    "warming up"
                } else {
                    "scoring"
                },
                samples: s.detector.samples(),
                value: s.value,
                baseline: s.detector.baseline(),
                spread: s.detector.baseline().map(|_| s.detector.spread()),
                score: s.score,
                threshold: s.config.threshold,
                anomalies: s.anomalies,
                error: s.error.clone(),
            })
            .collect()
    }

    /// The most recent anomalies, newest first, of one stream or all; at most `limit`.
    pub fn recent(&self, stream: Option<&str>, limit: usize) -> Vec<Anomaly> {
        self.inner
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .filter(|a| stream.is_none_or(|s| a.stream == s))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Whether a stream of this name is configured.
    pub fn has_stream(&self, name: &str) -> bool {
        self.streams_lock().iter().any(|s| s.config.name == name)
    }

    fn streams_lock(&self) -> std::sync::MutexGuard<'_, Vec<Stream>> {
        self.inner.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next_seq(&self) -> u64 {
        self.inner.seq.fetch_add(1, Ordering::Relaxed) + 1
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
