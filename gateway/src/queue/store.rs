//! The durable half of the offline queue: entries in one SQLite file (WAL, `synchronous =
//! FULL`, so an entry is on disk before `enqueue` returns), payloads compressed with zstd, a
//! bound with an explicit overflow policy, and an integrity check at open that moves a corrupt
//! file aside instead of deleting it.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use mcp_edge_core::codec::Codec;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, warn};

use crate::compression::{zstd_decode, zstd_encode};
use crate::config::{Compression, Overflow};

/// zstd level for payloads: fast, and most of the ratio on JSON.
const ZSTD_LEVEL: i32 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    target          TEXT NOT NULL,
    codec           TEXT NOT NULL,
    raw_bytes       INTEGER NOT NULL,
    stored_bytes    INTEGER NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    result          BLOB,
    result_codec    TEXT,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS entries_state ON entries (state, seq);
-- Payloads live apart from the entry rows: a state change rewrites a small row, not the
-- request, and a delivered entry's payload is deleted, which gives its space back.
CREATE TABLE IF NOT EXISTS payloads (
    seq             INTEGER PRIMARY KEY,
    body            BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS entries_payload_gone AFTER DELETE ON entries
BEGIN
    DELETE FROM payloads WHERE seq = old.seq;
END;
";

/// Why the queue could not take or give an entry.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The queue is at `offline.queue_size` and the policy is to refuse.
    #[error("the offline queue is full ({0} entries, offline.queue_size)")]
    Full(u64),
    /// The file system holding the queue is full.
    #[error("no space left for the offline queue at {0}")]
    DiskFull(PathBuf),
    /// Any other database failure.
    #[error("offline queue {path}: {message}")]
    Database { path: PathBuf, message: String },
}

/// One entry as the status API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub id: String,
    pub kind: String,
    pub target: String,
    /// `queued`, `delivered` or `failed`.
    pub state: String,
    pub attempts: u32,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub result: Option<Value>,
    pub last_error: Option<String>,
}

/// An entry waiting to be delivered, with its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub seq: i64,
    pub id: String,
    pub kind: String,
    pub target: String,
    pub payload: Value,
    pub attempts: u32,
}

/// Depth and size of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Depth {
    pub queued: u64,
    pub delivered: u64,
    pub failed: u64,
    /// Compressed payload bytes of the waiting entries.
    pub queued_bytes: u64,
    /// Creation time of the oldest waiting entry.
    pub oldest_queued_ms: Option<u64>,
}

/// A stored entry's id, and how many of the oldest entries made room for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub id: String,
    pub dropped: u64,
    /// Entries waiting now, this one included.
    pub queued: u64,
}

/// How one delivery attempt ended, as [`Store::record`] writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Delivered; the upstream's answer is kept for pickup.
    Delivered(Value),
    /// Not delivered this time; the entry stays queued.
    Retry(String),
    /// The upstream refused the entry itself; retrying cannot help.
    Failed(String),
}

/// The queue file.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    max_entries: u64,
    overflow: Overflow,
    compression: Compression,
}

impl Store {
    /// Opens (or creates) the queue at `path`. A file that fails SQLite's integrity check is
    /// renamed to `<path>.corrupt-<unix ms>` (its WAL and shared-memory files too), logged, and
    /// replaced by an empty queue.
    pub fn open(
        path: &Path,
        max_entries: u64,
        overflow: Overflow,
        compression: Compression,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| database(path, e))?;
        }
        let conn = match open_checked(path) {
            Ok(conn) => conn,
            Err(problem) if path.exists() => {
                let aside = PathBuf::from(format!("{}.corrupt-{}", path.display(), now_ms()));
                error!(
                    path = %path.display(),
                    moved_to = %aside.display(),
                    problem = %problem,
                    "the offline queue database is damaged; moved it aside and starting an empty queue"
                );
                for suffix in ["", "-wal", "-shm"] {
                    let from = PathBuf::from(format!("{}{suffix}", path.display()));
                    if from.exists() {
                        let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                        std::fs::rename(&from, &to).map_err(|e| database(path, e))?;
                    }
                }
                open_checked(path).map_err(|message| StoreError::Database {
                    path: path.to_owned(),
                    message,
                })?
            }
            Err(message) => {
                return Err(StoreError::Database {
                    path: path.to_owned(),
                    message,
                })
            }
        };
        let store = Self {
            conn,
            path: path.to_owned(),
            max_entries,
            overflow,
            compression,
        };
        let depth = store.depth()?;
        info!(path = %path.display(), queued = depth.queued, "offline queue open");
        Ok(store)
    }

    /// Stores one entry (the unit tests' shorthand for [`Store::enqueue_many`]).
    #[cfg(test)]
    fn enqueue(
        &mut self,
        kind: &str,
        target: &str,
        payload: &Value,
    ) -> Result<Enqueued, StoreError> {
        self.enqueue_many(&[(&new_id(), kind, target, payload)])
            .pop()
            .unwrap_or_else(|| Err(database(&self.path, "no result")))
    }

    /// Stores entries durably, all in one transaction so that they share one disk sync (group
    /// commit); each gets its own answer, and only after this returns may its caller be told
    /// that it was accepted. When the transaction as a whole fails (the disk
    /// filled up halfway), each entry is tried alone, so that those that fit are kept.
    pub fn enqueue_many(
        &mut self,
        items: &[(&str, &str, &str, &Value)],
    ) -> Vec<Result<Enqueued, StoreError>> {
        let stored = match self.insert_all(items) {
            Ok(results) => return results,
            Err(e) if items.len() == 1 => vec![Err(e)],
            Err(_) => items
                .iter()
                .map(|item| {
                    self.insert_all(std::slice::from_ref(item))
                        .and_then(|mut one| {
                            one.pop()
                                .unwrap_or_else(|| Err(database(&self.path, "no result")))
                        })
                })
                .collect(),
        };
        if stored
            .iter()
            .any(|r| matches!(r, Err(StoreError::DiskFull(_))))
        {
            self.after_disk_full();
        }
        stored
    }

    /// One transaction for `items`; `Err` when it failed as a whole (nothing stored). A full
    /// queue under `overflow = reject` refuses single entries without failing the rest.
    fn insert_all(
        &mut self,
        items: &[(&str, &str, &str, &Value)],
    ) -> Result<Vec<Result<Enqueued, StoreError>>, StoreError> {
        let path = self.path.clone();
        let (max_entries, overflow, compression) =
            (self.max_entries, self.overflow, self.compression);
        let now = now_ms() as i64;
        let tx = self.conn.transaction().map_err(|e| classify(&path, e))?;
        let queued: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM entries WHERE state = 'queued'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| classify(&path, e))?;
        let mut queued = queued as u64;
        let mut results = Vec::with_capacity(items.len());
        for (id, kind, target, payload) in items {
            let raw = serde_json::to_vec(payload).map_err(|e| database(&path, e))?;
            let (codec, compressed) =
                compress(compression, &raw).map_err(|e| database(&path, e))?;
            let mut dropped = 0;
            if queued >= max_entries {
                if overflow == Overflow::Reject {
                    results.push(Err(StoreError::Full(max_entries)));
                    continue;
                }
                dropped = queued + 1 - max_entries;
                tx.execute(
                    "DELETE FROM entries WHERE seq IN (SELECT seq FROM entries WHERE state = 'queued' ORDER BY seq LIMIT ?1)",
                    params![dropped as i64],
                )
                .map_err(|e| classify(&path, e))?;
            }
            tx.execute(
                "INSERT INTO entries (id, kind, target, codec, raw_bytes, stored_bytes, state, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?7)",
                params![id, kind, target, codec, raw.len() as i64, compressed.len() as i64, now],
            )
            .map_err(|e| classify(&path, e))?;
            tx.execute(
                "INSERT INTO payloads (seq, body) VALUES (last_insert_rowid(), ?1)",
                params![compressed],
            )
            .map_err(|e| classify(&path, e))?;
            queued = queued + 1 - dropped;
            results.push(Ok(Enqueued {
                id: (*id).to_owned(),
                dropped,
                queued,
            }));
        }
        tx.commit().map_err(|e| classify(&path, e))?;
        Ok(results)
    }

    /// The oldest waiting entries, at most `limit`.
    pub fn pending(&self, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT e.seq, e.id, e.kind, e.target, e.codec, p.body, e.attempts
                 FROM entries e JOIN payloads p ON p.seq = e.seq
                 WHERE e.state = 'queued' ORDER BY e.seq LIMIT ?1",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                    r.get::<_, u32>(6)?,
                ))
            })
            .map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, id, kind, target, codec, payload, attempts) =
                row.map_err(|e| self.error(e))?;
            out.push(Pending {
                seq,
                id,
                kind,
                target,
                payload: decompress(&codec, &payload).map_err(|e| database(&self.path, e))?,
                attempts,
            });
        }
        Ok(out)
    }

    /// Writes the outcomes of delivery attempts, all in one transaction (one disk sync).
    pub fn record(&mut self, outcomes: &[(String, Outcome)]) -> Result<(), StoreError> {
        let written = self.write_outcomes(outcomes);
        if matches!(written, Err(StoreError::DiskFull(_))) {
            self.after_disk_full();
        }
        written
    }

    /// After a write failed for want of space, folds the write-ahead log back into the
    /// database and truncates it: the log holds every version of the pages written since the
    /// last checkpoint, so this gives space back (SQLite would only checkpoint at 1000 pages).
    fn after_disk_full(&self) {
        let path = self.path.display();
        match self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            }) {
            Ok(0) => {
                warn!(%path, "offline queue: disk full; folded the write-ahead log into the database to free space")
            }
            Ok(_) => {
                warn!(%path, "offline queue: disk full; the write-ahead log could not be folded back yet (busy)")
            }
            Err(e) => {
                warn!(%path, error = %e, "offline queue: disk full; no space even to fold the write-ahead log back")
            }
        }
    }

    fn write_outcomes(&mut self, outcomes: &[(String, Outcome)]) -> Result<(), StoreError> {
        let now = now_ms() as i64;
        let tx = self
            .conn
            .transaction()
            .map_err(|e| classify(&self.path, e))?;
        for (id, outcome) in outcomes {
            match outcome {
                Outcome::Delivered(result) => {
                    let raw = serde_json::to_vec(result).map_err(|e| database(&self.path, e))?;
                    let (codec, compressed) =
                        compress(self.compression, &raw).map_err(|e| database(&self.path, e))?;
                    tx.execute(
                        "UPDATE entries SET state = 'delivered', result = ?2, result_codec = ?3,
                         updated_ms = ?4, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
                        params![id, compressed, codec, now],
                    )
                    .and_then(|_| {
                        tx.execute(
                            "DELETE FROM payloads WHERE seq = (SELECT seq FROM entries WHERE id = ?1)",
                            params![id],
                        )
                    })
                }
                Outcome::Retry(message) | Outcome::Failed(message) => {
                    let state = if matches!(outcome, Outcome::Failed(_)) {
                        "failed"
                    } else {
                        "queued"
                    };
                    tx.execute(
                        "UPDATE entries SET state = ?2, attempts = attempts + 1, last_error = ?3,
                         updated_ms = ?4 WHERE id = ?1",
                        params![id, state, message, now],
                    )
                }
            }
            .map_err(|e| classify(&self.path, e))?;
        }
        tx.commit().map_err(|e| classify(&self.path, e))
    }

    /// Deletes delivered and failed entries last touched before `before_ms`; returns how many.
    pub fn prune(&mut self, before_ms: u64) -> Result<u64, StoreError> {
        self.conn
            .execute(
                "DELETE FROM entries WHERE state != 'queued' AND updated_ms < ?1",
                params![before_ms as i64],
            )
            .map(|n| n as u64)
            .map_err(|e| classify(&self.path, e))
    }

    /// One entry by id.
    pub fn get(&self, id: &str) -> Result<Option<Entry>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, kind, target, state, attempts, created_ms, updated_ms, result, last_error,
                        result_codec
                 FROM entries WHERE id = ?1",
                params![id],
                |r| {
                    Ok((
                        Entry {
                            id: r.get(0)?,
                            kind: r.get(1)?,
                            target: r.get(2)?,
                            state: r.get(3)?,
                            attempts: r.get(4)?,
                            created_ms: r.get::<_, i64>(5)? as u64,
                            updated_ms: r.get::<_, i64>(6)? as u64,
                            result: None,
                            last_error: r.get(8)?,
                        },
                        r.get::<_, Option<Vec<u8>>>(7)?,
                        r.get::<_, Option<String>>(9)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.error(e))?;
        let Some((mut entry, result, codec)) = row else {
            return Ok(None);
        };
        if let (Some(bytes), Some(codec)) = (result, codec) {
            entry.result = Some(decompress(&codec, &bytes).map_err(|e| database(&self.path, e))?);
        }
        Ok(Some(entry))
    }

    pub fn depth(&self) -> Result<Depth, StoreError> {
        self.conn
            .query_row(
                "SELECT
                    COALESCE(SUM(state = 'queued'), 0),
                    COALESCE(SUM(state = 'delivered'), 0),
                    COALESCE(SUM(state = 'failed'), 0),
                    COALESCE(SUM(CASE WHEN state = 'queued' THEN stored_bytes END), 0),
                    MIN(CASE WHEN state = 'queued' THEN created_ms END)
                 FROM entries",
                [],
                |r| {
                    Ok(Depth {
                        queued: r.get::<_, i64>(0)? as u64,
                        delivered: r.get::<_, i64>(1)? as u64,
                        failed: r.get::<_, i64>(2)? as u64,
                        queued_bytes: r.get::<_, i64>(3)? as u64,
                        oldest_queued_ms: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                    })
                },
            )
            .map_err(|e| self.error(e))
    }

    /// Uncompressed payload bytes of the waiting entries.
    pub fn raw_bytes(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(SUM(raw_bytes), 0) FROM entries WHERE state = 'queued'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.error(e))
    }

    fn error(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.path, e)
    }
}

/// Opens the file with the queue's settings and checks it; the problem in words otherwise.
fn open_checked(path: &Path) -> Result<Connection, String> {
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if check != "ok" {
        return Err(format!("integrity check: {check}"));
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| e.to_string())?;
    conn.execute_batch(SCHEMA).map_err(|e| e.to_string())?;
    Ok(conn)
}

fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::DiskFull(path.to_owned()),
        _ => database(path, e),
    }
}

fn database(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Database {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// The codec's name as stored beside the bytes, and the bytes.
fn compress(compression: Compression, raw: &[u8]) -> Result<(&'static str, Vec<u8>), String> {
    match compression {
        Compression::None => Ok(portable(Codec::None, raw)),
        Compression::Lz4 => Ok(portable(Codec::Lz4, raw)),
        Compression::Zstd => zstd_encode(raw, ZSTD_LEVEL).map(|bytes| ("zstd", bytes)),
    }
}

fn portable(codec: Codec, raw: &[u8]) -> (&'static str, Vec<u8>) {
    (codec.name(), codec.encode(raw))
}

fn decompress(codec: &str, bytes: &[u8]) -> Result<Value, String> {
    let raw = match (Codec::from_name(codec), codec) {
        (Some(portable), _) => portable.decode(bytes).map_err(|e| e.to_string()),
        (None, "zstd") => zstd_decode(bytes),
        (None, other) => Err(format!("unknown codec {other:?}")),
    }
    .map_err(|e| format!("payload does not decompress: {e}"))?;
    serde_json::from_slice(&raw).map_err(|e| format!("payload is not JSON: {e}"))
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `q-` and 24 hex digits: the time in ms, the process and a counter, unique across restarts.
pub fn new_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "q-{:013x}{:03x}{:08x}",
        now_ms(),
        std::process::id() & 0xfff,
        n
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The payloads of the waiting entries, oldest first.
    fn waiting(store: &Store) -> Vec<Value> {
        store
            .pending(100)
            .unwrap()
            .into_iter()
            .map(|p| p.payload)
            .collect()
    }

    #[test]
    fn entries_survive_reopening_and_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.sqlite");
        let mut store = Store::open(&path, 10, Overflow::Reject, Compression::Zstd).unwrap();
        let a = store
            .enqueue("completion", "cloud", &json!({ "n": 1 }))
            .unwrap()
            .id;
        let b = store
            .enqueue("completion", "cloud", &json!({ "n": 2 }))
            .unwrap()
            .id;
        drop(store);
        let mut store = Store::open(&path, 10, Overflow::Reject, Compression::Zstd).unwrap();
        let pending = store.pending(10).unwrap();
        assert_eq!(
            pending.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
            [a.clone(), b]
        );
        assert_eq!(pending[0].payload, json!({ "n": 1 }));
        store
            .record(&[(a.clone(), Outcome::Delivered(json!({ "answer": "ok" })))])
            .unwrap();
        let entry = store.get(&a).unwrap().unwrap();
        assert_eq!(entry.state, "delivered");
        assert_eq!(entry.result, Some(json!({ "answer": "ok" })));
        let depth = store.depth().unwrap();
        assert_eq!((depth.queued, depth.delivered), (1, 1));
        let payloads: i64 = store
            .conn
            .query_row("SELECT COUNT(*) FROM payloads", [], |r| r.get(0))
            .unwrap();
        assert_eq!(payloads, 1, "a delivered entry's payload is deleted");
    }

    #[test]
    fn overflow_rejects_or_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(
            &dir.path().join("r.sqlite"),
            2,
            Overflow::Reject,
            Compression::Zstd,
        )
        .unwrap();
        for n in 0..2 {
            store.enqueue("completion", "cloud", &json!(n)).unwrap();
        }
        assert!(matches!(
            store.enqueue("completion", "cloud", &json!(2)),
            Err(StoreError::Full(2))
        ));
        let mut store = Store::open(
            &dir.path().join("d.sqlite"),
            2,
            Overflow::DropOldest,
            Compression::Lz4,
        )
        .unwrap();
        let dropped: Vec<u64> = (0..3)
            .map(|n| {
                store
                    .enqueue("completion", "cloud", &json!(n))
                    .unwrap()
                    .dropped
            })
            .collect();
        assert_eq!(dropped, [0, 0, 1]);
        let kept = waiting(&store);
        assert_eq!(kept, [json!(1), json!(2)]);
    }

    #[test]
    fn a_group_commit_answers_each_entry_and_keeps_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.sqlite");
        let mut store = Store::open(&path, 3, Overflow::Reject, Compression::Zstd).unwrap();
        let payloads: Vec<Value> = (0..5).map(|n| json!({ "n": n })).collect();
        let ids: Vec<String> = payloads.iter().map(|_| new_id()).collect();
        let items: Vec<(&str, &str, &str, &Value)> = ids
            .iter()
            .zip(&payloads)
            .map(|(id, p)| (id.as_str(), "completion", "cloud", p))
            .collect();
        let results = store.enqueue_many(&items);
        let stored: Vec<u64> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|e| e.queued))
            .collect();
        assert_eq!(stored, [1, 2, 3]);
        assert!(matches!(results[3], Err(StoreError::Full(3))));
        assert!(matches!(results[4], Err(StoreError::Full(3))));
        drop(store);
        let store = Store::open(&path, 3, Overflow::Reject, Compression::Zstd).unwrap();
        let kept = waiting(&store);
        assert_eq!(kept, payloads[..3]);
    }

    #[test]
    fn a_full_disk_is_an_error_and_keeps_what_was_stored() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(
            &dir.path().join("q.sqlite"),
            1_000,
            Overflow::Reject,
            Compression::Zstd,
        )
        .unwrap();
        // SQLite reports SQLITE_FULL when the file would outgrow max_page_count, exactly as
        // when the file system is full.
        store
            .conn
            .pragma_update(None, "max_page_count", 40)
            .unwrap();
        let mut seed = 7u64;
        let mut noise = || {
            (0..2_000)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    char::from(b'a' + (seed >> 59) as u8)
                })
                .collect::<String>()
        };
        let mut stored = 0;
        let error = loop {
            match store.enqueue("completion", "cloud", &json!(noise())) {
                Ok(_) => stored += 1,
                Err(e) => break e,
            }
            assert!(stored < 1_000, "the page limit was never reached");
        };
        assert!(matches!(error, StoreError::DiskFull(_)), "{error}");
        assert!(stored > 0);
        assert_eq!(
            store.depth().unwrap().queued,
            stored,
            "earlier entries are intact"
        );
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.sqlite");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let store = Store::open(&path, 10, Overflow::Reject, Compression::Zstd).unwrap();
        assert_eq!(store.depth().unwrap().queued, 0);
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::read(aside[0].path()).unwrap(), vec![0x5a; 8192]);
    }
}
