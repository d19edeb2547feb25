//! Delivering what waits in the queue: a round takes the oldest entries, hands each to the
//! [`Delivery`] with its id as idempotency key, and records the outcomes. A round stops at the
//! first entry that could not be delivered for a reason that may pass (the link is down); the
//! loop then waits `sync_interval_seconds` doubled per failed round (capped, with jitter), or
//! less when the link comes back or an operator asks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::store::{now_ms, Outcome, Pending, StoreError};
use super::{link, OfflineQueue};

/// Longest wait between rounds however often they failed.
const MAX_BACKOFF: Duration = Duration::from_secs(30 * 60);
/// How often the default route is looked at while entries wait.
const LINK_POLL: Duration = Duration::from_secs(5);

/// How a round delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SyncStrategy {
    /// Strictly in order, one at a time; each outcome is on disk before the next is sent.
    OneByOne,
    /// Up to `size` entries in flight at once; their outcomes are written in one transaction.
    Batched { size: usize },
}

impl SyncStrategy {
    fn batch(self) -> usize {
        match self {
            SyncStrategy::OneByOne => 1,
            SyncStrategy::Batched { size } => size.max(1),
        }
    }
}

/// Replays one entry where it was going. The entry's id is its idempotency key: an upstream
/// that receives the same key twice (after a crash between its answer and our record of it)
/// must treat the second as the first.
pub trait Delivery: Send + Sync + std::fmt::Debug {
    fn deliver(&self, entry: Pending) -> BoxFuture<'static, Outcome>;
}

/// What one sync round did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Wall-clock start, ms since the Unix epoch.
    pub started_ms: u64,
    pub duration_ms: u64,
    pub attempted: u64,
    pub delivered: u64,
    /// Entries the upstream refused for good (kept with their error).
    pub failed: u64,
    /// Entries still waiting after the round.
    pub remaining: u64,
    /// Why the round stopped early, if it did.
    pub error: Option<String>,
}

impl OfflineQueue {
    /// Starts the sync loop, which delivers through `delivery` until `stop`.
    pub fn start(&self, delivery: Arc<dyn Delivery>, stop: CancellationToken) {
        if self.inner.delivery.set(delivery).is_err() {
            warn!("the offline queue's sync loop is already running");
            return;
        }
        tokio::spawn(self.clone().run_sync(stop));
    }

    /// Delivers what waits now and reports it; waits for a round already running to finish
    /// first. This is `POST /v1/queue/sync` and the `sync_offline_queue` tool.
    pub async fn sync_offline_queue(&self) -> Result<SyncReport, StoreError> {
        let Some(delivery) = self.inner.delivery.get() else {
            return Err(StoreError::Database {
                path: self.inner.settings.path.clone(),
                message: "the sync loop has not started".into(),
            });
        };
        let _one_at_a_time = self.inner.syncing.lock().await;
        let started = Instant::now();
        let started_ms = now_ms();
        let mut report = SyncReport {
            started_ms,
            duration_ms: 0,
            attempted: 0,
            delivered: 0,
            failed: 0,
            remaining: 0,
            error: None,
        };
        // Entries that arrive during the round wait for the next one, so a round ends.
        let mut budget = self.with_store(|s| s.depth()).await?.queued;
        let batch = self.inner.settings.strategy.batch();
        while budget > 0 && report.error.is_none() {
            let limit = batch.min(budget as usize);
            let entries = self.with_store(move |s| s.pending(limit)).await?;
            if entries.is_empty() {
                break;
            }
            budget = budget.saturating_sub(entries.len() as u64);
            let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
            let outcomes =
                futures::future::join_all(entries.into_iter().map(|e| delivery.deliver(e))).await;
            let outcomes: Vec<(String, Outcome)> = ids.into_iter().zip(outcomes).collect();
            for (id, outcome) in &outcomes {
                report.attempted += 1;
                match outcome {
                    Outcome::Delivered(_) => report.delivered += 1,
                    Outcome::Failed(message) => {
                        report.failed += 1;
                        warn!(%id, error = %message, "queued entry refused by its upstream; kept as failed");
                    }
                    Outcome::Retry(message) => {
                        report.error.get_or_insert_with(|| message.clone());
                    }
                }
            }
            self.with_store(move |s| s.record(&outcomes)).await?;
        }
        let keep = self.inner.settings.keep_results;
        let before = now_ms().saturating_sub(keep.as_millis() as u64);
        let depth = self
            .with_store(move |s| {
                s.prune(before)?;
                s.depth()
            })
            .await?;
        report.remaining = depth.queued;
        report.duration_ms = started.elapsed().as_millis() as u64;
        let metrics = &self.inner.metrics;
        metrics.queue_depth(depth.queued);
        metrics.queue_synced(report.delivered, report.failed, report.error.is_none());
        let mut state = self.state();
        state.failures = if report.error.is_some() {
            state.failures.saturating_add(1)
        } else {
            0
        };
        state.last = Some(report.clone());
        drop(state);
        if report.attempted > 0 {
            info!(
                delivered = report.delivered,
                failed = report.failed,
                remaining = report.remaining,
                duration_ms = report.duration_ms,
                error = report.error.as_deref().unwrap_or(""),
                "offline queue sync round"
            );
        }
        Ok(report)
    }

    /// The sync loop; runs until `stop`. Asleep (no timers) while the queue is empty.
    async fn run_sync(self, stop: CancellationToken) {
        let root = self.inner.settings.system_root.clone();
        let mut route = link::default_route(&root);
        // What waited across a restart goes out at once, not after an interval.
        let mut first = true;
        loop {
            let queued = match self.with_store(|s| s.depth()).await {
                Ok(depth) => depth.queued,
                Err(e) => {
                    warn!(error = %e, "cannot read the offline queue; trying again later");
                    1
                }
            };
            if queued == 0 {
                tokio::select! {
                    _ = self.inner.arrived.notified() => {}
                    _ = self.inner.sync_now.notified() => {}
                    _ = stop.cancelled() => return,
                }
            }
            let wait = if std::mem::take(&mut first) {
                Duration::ZERO
            } else {
                self.next_wait()
            };
            let deadline = tokio::time::Instant::now() + wait;
            let mut poll = tokio::time::interval(LINK_POLL);
            poll.tick().await;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = self.inner.sync_now.notified() => break,
                    _ = poll.tick() => {
                        let now = link::default_route(&root);
                        if now != route && now.is_some() {
                            info!(route = now.as_deref().unwrap_or(""), "the device has a default route again; syncing the offline queue");
                            route = now;
                            self.state().failures = 0;
                            break;
                        }
                        route = now;
                    }
                    _ = stop.cancelled() => return,
                }
            }
            if let Err(e) = self.sync_offline_queue().await {
                warn!(error = %e, "offline queue sync failed");
                let mut state = self.state();
                state.failures = state.failures.saturating_add(1);
            }
        }
    }

    /// Tells the queue that the cloud just answered a live request: if the last round could
    /// not deliver, the link is back and the loop syncs now instead of after its backoff.
    pub fn link_is_up(&self) {
        let mut state = self.state();
        if state.failures > 0 {
            state.failures = 0;
            drop(state);
            self.inner.sync_now.notify_one();
        }
    }

    /// `sync_interval_seconds` doubled per failed round (and stretched in low-power), capped,
    /// then jittered to 50–100 %.
    fn next_wait(&self) -> Duration {
        let failures = self.state().failures.min(16);
        let interval = self.inner.pace.stretch(self.inner.settings.interval);
        let base = interval.saturating_mul(1 << failures).min(MAX_BACKOFF);
        let jitter = 0.5 + 0.5 * jitter_unit();
        base.mul_f64(jitter)
    }
}

/// A number in [0, 1) from the clock and a counter; jitter only needs to differ between
/// devices and rounds, not to be unpredictable.
fn jitter_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now_ms());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}
