//! Memory budgets per subsystem (the seed's `set_memory_limits` / `memory_stats`): what the
//! gateway may hold at once for HTTP bodies and for telemetry waiting on a collector, enforced
//! where the memory is taken, and the model's budget (`models.max_memory_mb`, enforced when it
//! loads); reported by `GET /v1/memory`, `/metrics` and [`crate::GatewayHandle::memory_stats`].
//!
//! A [`Budget`] counts bytes; [`Budget::reserve`] takes some or refuses, and the
//! [`Reservation`] gives them back when dropped, so nothing can be released twice or leak on an
//! early return.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;

use crate::config::MemoryConfig;
use crate::telemetry::Metrics;

/// One subsystem's budget. Shared (`Arc`) by everything that takes from it.
#[derive(Debug)]
pub struct Budget {
    limit: AtomicU64,
    used: AtomicU64,
    peak: AtomicU64,
    refused: AtomicU64,
    gauges: Gauges,
}

/// The budget's series in `/metrics`.
#[derive(Debug)]
struct Gauges {
    limit: Gauge,
    used: Gauge,
    refused: Counter,
}

fn bytes_gauge(gauge: &Gauge, bytes: u64) {
    gauge.set(i64::try_from(bytes).unwrap_or(i64::MAX));
}

/// Bytes taken from a budget; given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let used = self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel) - self.bytes;
        bytes_gauge(&self.budget.gauges.used, used);
    }
}

impl Reservation {
    /// Takes `bytes` more for the same holder; `false` (and nothing taken) when they do not fit.
    pub fn grow(&mut self, bytes: u64) -> bool {
        if !self.budget.take(bytes) {
            return false;
        }
        self.bytes += bytes;
        true
    }
}

impl Budget {
    fn new(name: &'static str, limit: u64, metrics: &Metrics) -> Arc<Self> {
        let (limit_gauge, used, refused) = metrics.memory_budget(name);
        bytes_gauge(&limit_gauge, limit);
        Arc::new(Self {
            limit: AtomicU64::new(limit),
            used: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            gauges: Gauges {
                limit: limit_gauge,
                used,
                refused,
            },
        })
    }

    /// Takes `bytes`, or `None` (counted as refused) when they would take the budget over its
    /// limit.
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Option<Reservation> {
        self.take(bytes).then(|| Reservation {
            budget: Arc::clone(self),
            bytes,
        })
    }

    fn take(&self, bytes: u64) -> bool {
        // Nothing taken always fits, even while a lowered limit is still exceeded.
        if bytes == 0 {
            return true;
        }
        let limit = self.limit.load(Ordering::Acquire);
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= limit)
            });
        match taken {
            Ok(before) => {
                let used = before + bytes;
                self.peak.fetch_max(used, Ordering::AcqRel);
                bytes_gauge(&self.gauges.used, used);
                true
            }
            Err(_) => {
                self.refused.fetch_add(1, Ordering::AcqRel);
                self.gauges.refused.inc();
                false
            }
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Acquire)
    }

    /// A new limit for what is taken from now on; what is held stays held.
    fn set_limit(&self, bytes: u64) {
        self.limit.store(bytes, Ordering::Release);
        bytes_gauge(&self.gauges.limit, bytes);
    }

    fn stats(&self) -> BudgetStats {
        BudgetStats {
            limit_bytes: self.limit(),
            used_bytes: self.used.load(Ordering::Acquire),
            peak_bytes: self.peak.load(Ordering::Acquire),
            refused: self.refused.load(Ordering::Acquire),
        }
    }
}

/// One budget as `/v1/memory` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BudgetStats {
    pub limit_bytes: u64,
    pub used_bytes: u64,
    /// Most ever held at once since the start.
    pub peak_bytes: u64,
    /// Requests or responses refused (`http_buffers`), snapshots dropped (`telemetry_buffer`).
    pub refused: u64,
}

/// The model's budget: `models.max_memory_mb`, against what the loaded model holds (weights,
/// the KV cache for a full context, working memory), checked before any weight is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelMemory {
    pub limit_bytes: u64,
    /// 0 without a local model.
    pub used_bytes: u64,
    pub weights_bytes: u64,
    pub kv_cache_bytes: u64,
    pub working_bytes: u64,
}

/// The answer of `GET /v1/memory` and [`crate::GatewayHandle::memory_stats`].
#[derive(Debug, Clone, Serialize)]
pub struct MemoryStats {
    /// The process as the kernel counts it (`/proc/self/status`).
    pub process: ProcessMemory,
    pub model: ModelMemory,
    pub http_buffers: BudgetStats,
    pub telemetry_buffer: BudgetStats,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProcessMemory {
    /// VmRSS.
    pub resident_bytes: Option<u64>,
    /// VmHWM: the most resident at once since the start.
    pub peak_resident_bytes: Option<u64>,
}

/// The limits [`crate::GatewayHandle::set_memory_limits`] changes while the gateway runs
/// (`[memory]`, also applied by a reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    pub http_buffers_bytes: u64,
    pub telemetry_buffer_bytes: u64,
}

impl MemoryLimits {
    pub fn from_config(config: &MemoryConfig) -> Self {
        Self {
            http_buffers_bytes: config.http_buffers_kb.saturating_mul(1024),
            telemetry_buffer_bytes: config.telemetry_buffer_kb.saturating_mul(1024),
        }
    }
}

/// Every budget of one gateway.
#[derive(Debug, Clone)]
pub struct MemoryBudgets {
    /// Request bodies being read or handled, and whole response bodies until they are sent.
    pub http_buffers: Arc<Budget>,
    /// Metrics snapshots kept for collectors that cannot be reached.
    pub telemetry_buffer: Arc<Budget>,
    model: ModelMemory,
}

impl MemoryBudgets {
    pub fn new(limits: MemoryLimits, model: ModelMemory, metrics: &Metrics) -> Self {
        let (limit, used, _) = metrics.memory_budget("model");
        bytes_gauge(&limit, model.limit_bytes);
        bytes_gauge(&used, model.used_bytes);
        Self {
            http_buffers: Budget::new("http_buffers", limits.http_buffers_bytes, metrics),
            telemetry_buffer: Budget::new(
                "telemetry_buffer",
                limits.telemetry_buffer_bytes,
                metrics,
            ),
            model,
        }
    }

    pub fn set_limits(&self, limits: MemoryLimits) {
        self.http_buffers.set_limit(limits.http_buffers_bytes);
        self.telemetry_buffer
            .set_limit(limits.telemetry_buffer_bytes);
    }

    pub fn stats(&self) -> MemoryStats {
        MemoryStats {
            process: process_memory(),
            model: self.model,
            http_buffers: self.http_buffers.stats(),
            telemetry_buffer: self.telemetry_buffer.stats(),
        }
    }
}

/// VmRSS and VmHWM of this process.
fn process_memory() -> ProcessMemory {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return ProcessMemory::default();
    };
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
    };
    ProcessMemory {
        resident_bytes: kib("VmRSS:"),
        peak_resident_bytes: kib("VmHWM:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: u64) -> Arc<Budget> {
        Budget::new("test", limit, &Metrics::new())
    }

    #[test]
    fn reservations_are_refused_past_the_limit_and_given_back_on_drop() {
        let budget = budget(100);
        let first = budget.reserve(60).unwrap();
        assert!(budget.reserve(41).is_none());
        let mut second = budget.reserve(40).unwrap();
        assert!(!second.grow(1), "the budget is full");
        assert_eq!(budget.stats().used_bytes, 100);
        drop(first);
        assert!(second.grow(60));
        drop(second);
        let stats = budget.stats();
        assert_eq!(
            (stats.used_bytes, stats.peak_bytes, stats.refused),
            (0, 100, 2)
        );
    }

    #[test]
    fn a_lower_limit_applies_to_what_is_taken_next() {
        let budget = budget(100);
        let held = budget.reserve(80).unwrap();
        budget.set_limit(50);
        assert!(budget.reserve(1).is_none());
        assert!(
            budget.reserve(0).is_some(),
            "a request without a body still fits"
        );
        drop(held);
        assert!(budget.reserve(50).is_some());
        assert!(budget.reserve(51).is_none());
    }

    #[test]
    fn the_process_knows_its_resident_memory() {
        let process = process_memory();
        assert!(process.resident_bytes.unwrap() > 0);
        assert!(process.peak_resident_bytes >= process.resident_bytes);
    }
}
