//! Readiness of each subsystem, as `/health` reports it and systemd's `STATUS=` summarises it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// Readiness of one subsystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubsystemStatus {
    pub ready: bool,
    /// One line an operator can act on: what it is doing, or why it is not ready.
    pub detail: String,
}

/// The readiness board. Subsystems write their own line; `/health` reads them all.
#[derive(Debug, Default)]
pub struct Health {
    subsystems: Mutex<BTreeMap<&'static str, SubsystemStatus>>,
}

impl Health {
    /// Records the state of `name`.
    pub fn set(&self, name: &'static str, ready: bool, detail: impl Into<String>) {
        let status = SubsystemStatus {
            ready,
            detail: detail.into(),
        };
        self.lock().insert(name, status);
    }

    /// Every subsystem's state, and whether all are ready (false when none registered).
    pub fn snapshot(&self) -> (bool, BTreeMap<&'static str, SubsystemStatus>) {
        let subsystems = self.lock().clone();
        let ready = !subsystems.is_empty() && subsystems.values().all(|s| s.ready);
        (ready, subsystems)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, SubsystemStatus>> {
        // A panic while holding this lock cannot leave the map half-written (insert and clone
        // are the only operations), so a poisoned lock still guards consistent data.
        self.subsystems
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
