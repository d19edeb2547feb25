//! The offline queue: requests that must survive a cut link and a crash.
//!
//! - `store`: the SQLite file (WAL, `synchronous = FULL`), compressed payloads, the bound and
//!   its overflow policy, the integrity check at open.
//! - `sync`: the loop that delivers waiting entries when the link allows, with backoff and
//!   jitter, in batches or one by one, each under its id as idempotency key.
//! - `link`: notices when the device gains a default route, so a sync need not wait for the
//!   next interval.
//!
//! [`OfflineQueue`] is the handle the rest of the gateway uses: `queue_for_sync` to store an
//! entry (acknowledge the caller only after it returns), `sync_offline_queue` to deliver now,
//! `status` and `entry` to report.

mod link;
mod store;
mod sync;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;

pub use crate::config::Overflow;
pub use store::{new_id, Entry, Outcome, Pending, StoreError};

use store::{Enqueued, Store};
pub use sync::{Delivery, SyncReport, SyncStrategy};

use crate::config::{Config, SyncStrategyName};
use crate::telemetry::Metrics;

/// The durable queue and its sync state. Cheap to clone; clones share one queue.
#[derive(Debug, Clone)]
pub struct OfflineQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<Mutex<Store>>,
    /// New entries, written by one thread in group commits.
    writes: tokio::sync::mpsc::Sender<Write>,
    settings: Settings,
    metrics: Arc<Metrics>,
    /// Stretches the retry interval in low-power.
    pace: Arc<crate::power::Pace>,
    /// An entry arrived: the sync loop, asleep on an empty queue, starts counting the interval.
    arrived: Notify,
    /// Sync now (the link came back, or an operator asked).
    sync_now: Notify,
    /// One sync at a time.
    syncing: tokio::sync::Mutex<()>,
    /// Set once, when the sync loop starts.
    delivery: std::sync::OnceLock<Arc<dyn Delivery>>,
    state: Mutex<SyncState>,
}

#[derive(Debug, Clone)]
struct Settings {
    path: PathBuf,
    /// Where `/proc/net/route` is read (`device.system_root`).
    system_root: crate::device::SystemRoot,
    capacity: u64,
    overflow: Overflow,
    interval: Duration,
    strategy: SyncStrategy,
    keep_results: Duration,
}

#[derive(Debug, Default)]
struct SyncState {
    last: Option<SyncReport>,
    /// Rounds in a row that stopped on an undeliverable entry; drives the backoff.
    failures: u32,
}

/// Most entries written in one transaction (one disk sync).
const GROUP_COMMIT: usize = 64;

/// An entry on its way to the writer thread, and where its answer goes.
#[derive(Debug)]
struct Write {
    id: String,
    kind: String,
    target: String,
    payload: Value,
    done: tokio::sync::oneshot::Sender<Result<Enqueued, StoreError>>,
}

/// The writer thread: takes what has arrived (up to [`GROUP_COMMIT`]) and stores it in one
/// transaction, so that concurrent callers share a disk sync instead of queueing for one each.
/// It ends when the queue is dropped.
fn write_entries(store: Arc<Mutex<Store>>, mut writes: tokio::sync::mpsc::Receiver<Write>) {
    while let Some(first) = writes.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT {
            match writes.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let items: Vec<(&str, &str, &str, &Value)> = batch
            .iter()
            .map(|w| {
                (
                    w.id.as_str(),
                    w.kind.as_str(),
                    w.target.as_str(),
                    &w.payload,
                )
            })
            .collect();
        let results = store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .enqueue_many(&items);
        for (write, result) in batch.into_iter().zip(results) {
            let _ = write.done.send(result);
        }
    }
}

/// What `GET /v1/queue/status` and the `queue_status` tool report.
#[derive(Debug, Clone, Serialize)]
pub struct QueueStatus {
    pub queued: u64,
    pub delivered: u64,
    pub failed: u64,
    /// Age of the oldest waiting entry.
    pub oldest_age_ms: Option<u64>,
    /// Stored (compressed) payload bytes of the waiting entries.
    pub bytes: u64,
    /// The same payloads uncompressed.
    pub raw_bytes: u64,
    pub capacity: u64,
    pub overflow: Overflow,
    pub strategy: SyncStrategy,
    pub last_sync: Option<SyncReport>,
    /// Sync rounds in a row that could not deliver; the next waits longer.
    pub consecutive_failures: u32,
    pub path: PathBuf,
}

impl OfflineQueue {
    /// Opens the queue file named by `[offline]` (moving a damaged one aside).
    pub fn open(
        config: &Config,
        metrics: Arc<Metrics>,
        pace: Arc<crate::power::Pace>,
    ) -> Result<Self, StoreError> {
        let system_root = crate::device::SystemRoot::new(&config.device.system_root);
        let config = &config.offline;
        let store = Store::open(
            &config.persistence_path,
            u64::from(config.queue_size),
            config.overflow,
            config.compression,
        )?;
        metrics.queue_depth(store.depth()?.queued);
        let strategy = match config.sync_strategy {
            SyncStrategyName::Batched => SyncStrategy::Batched {
                size: config.sync_batch_size as usize,
            },
            SyncStrategyName::OneByOne => SyncStrategy::OneByOne,
        };
        let store = Arc::new(Mutex::new(store));
        let (writes, pending) = tokio::sync::mpsc::channel(4 * GROUP_COMMIT);
        {
            let store = Arc::clone(&store);
            std::thread::Builder::new()
                .name("queue-writer".into())
                .spawn(move || write_entries(store, pending))
                .map_err(|e| StoreError::Database {
                    path: config.persistence_path.clone(),
                    message: format!("cannot start the writer thread: {e}"),
                })?;
        }
        let queue = Self {
            inner: Arc::new(Inner {
                store,
                writes,
                settings: Settings {
                    path: config.persistence_path.clone(),
                    system_root,
                    capacity: u64::from(config.queue_size),
                    overflow: config.overflow,
                    interval: Duration::from_secs(u64::from(config.sync_interval_seconds)),
                    strategy,
                    keep_results: Duration::from_secs(u64::from(config.keep_results_hours) * 3600),
                },
                metrics,
                pace,
                arrived: Notify::new(),
                sync_now: Notify::new(),
                syncing: tokio::sync::Mutex::new(()),
                delivery: std::sync::OnceLock::new(),
                state: Mutex::default(),
            }),
        };
        Ok(queue)
    }

    /// Stores an entry durably under a new id: when this returns `Ok`, the entry is on disk
    /// and the caller may be told it was accepted. `kind` says which [`Delivery`] path replays
    /// it, `target` where it goes; `payload` is whatever that path needs.
    pub async fn queue_for_sync(
        &self,
        kind: &str,
        target: &str,
        payload: Value,
    ) -> Result<String, StoreError> {
        self.queue_for_sync_as(new_id(), kind, target, payload)
            .await
    }

    /// [`OfflineQueue::queue_for_sync`] under an id chosen earlier with [`new_id`]: the
    /// idempotency key a first, live attempt already carried.
    pub async fn queue_for_sync_as(
        &self,
        id: String,
        kind: &str,
        target: &str,
        payload: Value,
    ) -> Result<String, StoreError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let write = Write {
            id,
            kind: kind.to_owned(),
            target: target.to_owned(),
            payload,
            done,
        };
        let stopped = || StoreError::Database {
            path: self.inner.settings.path.clone(),
            message: "the queue's writer thread stopped".into(),
        };
        let stored = match self.inner.writes.send(write).await {
            Ok(()) => answer.await.unwrap_or_else(|_| Err(stopped())),
            Err(_) => Err(stopped()),
        };
        let metrics = &self.inner.metrics;
        match stored {
            Ok(Enqueued {
                id,
                dropped,
                queued,
            }) => {
                metrics.queue_enqueued(dropped);
                metrics.queue_depth(queued);
                self.inner.arrived.notify_one();
                Ok(id)
            }
            Err(e) => {
                metrics.queue_rejected(match e {
                    StoreError::Full(_) => "full",
                    StoreError::DiskFull(_) => "disk_full",
                    StoreError::Database { .. } => "error",
                });
                Err(e)
            }
        }
    }

    /// One entry by id, with its result once delivered.
    pub async fn entry(&self, id: &str) -> Result<Option<Entry>, StoreError> {
        let id = id.to_owned();
        self.with_store(move |store| store.get(&id)).await
    }

    pub async fn status(&self) -> Result<QueueStatus, StoreError> {
        let (depth, raw_bytes) = self
            .with_store(|store| Ok((store.depth()?, store.raw_bytes()?)))
            .await?;
        let state = self.state();
        let settings = &self.inner.settings;
        Ok(QueueStatus {
            queued: depth.queued,
            delivered: depth.delivered,
            failed: depth.failed,
            oldest_age_ms: depth
                .oldest_queued_ms
                .map(|t| store::now_ms().saturating_sub(t)),
            bytes: depth.queued_bytes,
            raw_bytes,
            capacity: settings.capacity,
            overflow: settings.overflow,
            strategy: settings.strategy,
            last_sync: state.last.clone(),
            consecutive_failures: state.failures,
            path: settings.path.clone(),
        })
    }

    /// `offline.sync_interval_seconds`: what a caller refused for a full queue should wait.
    pub fn sync_interval(&self) -> Duration {
        self.inner.settings.interval
    }

    /// Runs `work` on the store on a blocking thread (SQLite waits for the disk).
    async fn with_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = Arc::clone(&self.inner.store);
        tokio::task::spawn_blocking(move || {
            let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut store)
        })
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::Database {
                path: self.inner.settings.path.clone(),
                message: format!("the queue worker stopped: {e}"),
            })
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
