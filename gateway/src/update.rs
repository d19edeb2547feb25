//! A/B update status from RAUC, for `GET /v1/update` and the `update_status` MCP tool.
//!
//! The gateway only reads: it runs `rauc status --detailed --output-format=json` (RAUC's service
//! answers over D-Bus; the image's D-Bus policy lets anyone but root only read) and reshapes the
//! answer into the booted slot, the primary slot (the one the next boot starts), each slot's
//! boot state and installed bundle, and the outcome of the newest install. Installing is left
//! to root (`rauc install`, docs/OTA.md): the gateway holds no right to change the boot order.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::process::Command;

/// How long `rauc status` may take before the answer is "unavailable".
const RAUC_TIMEOUT: Duration = Duration::from_secs(15);

/// Reads the update status from RAUC.
#[derive(Debug, Clone)]
pub struct UpdateStatus {
    rauc: PathBuf,
}

/// Why there is no status.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// RAUC is not installed where `[update] rauc` says.
    #[error("RAUC is not installed at {0} ([update] rauc); this image cannot report A/B updates")]
    NotInstalled(PathBuf),
    /// RAUC ran and failed (no system.conf, its service not running, …).
    #[error("rauc status failed: {0}")]
    Failed(String),
    /// RAUC did not answer in time.
    #[error("rauc status did not answer within {} s", RAUC_TIMEOUT.as_secs())]
    Timeout,
    /// RAUC answered something this gateway does not understand.
    #[error("rauc status answered unexpected JSON: {0}")]
    Unreadable(String),
}

/// The update state of the device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// RAUC's compatible string: bundles for another machine are refused.
    pub compatible: String,
    /// Boot name of the slot running now (`a` or `b`).
    pub booted: String,
    /// Boot name of the slot the next boot starts.
    pub primary: Option<String>,
    pub slots: Vec<Slot>,
    /// The newest install RAUC recorded, and what became of it.
    pub last_install: Option<LastInstall>,
}

/// One root slot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slot {
    /// RAUC's slot name, e.g. `rootfs.1`.
    pub name: String,
    pub bootname: String,
    pub device: String,
    /// `booted`, `active` or `inactive` (RAUC's words).
    pub state: String,
    /// `good` (bootable) or `bad` (tries used up, or marked bad).
    pub boot_status: String,
    /// Version of the bundle installed in this slot (none for the slot the image shipped with).
    pub bundle_version: Option<String>,
    pub installed_at: Option<String>,
    pub activated_at: Option<String>,
}

/// The newest install and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastInstall {
    pub slot: String,
    pub bundle_version: Option<String>,
    pub installed_at: String,
    /// `running` (booted and healthy enough to run this gateway), `awaiting reboot` (primary,
    /// not booted yet), `rolled back` (its tries ran out or it was marked bad) or `inactive`
    /// (good, but another slot was made primary since).
    pub outcome: &'static str,
}

impl UpdateStatus {
    pub fn new(rauc: &Path) -> Self {
        Self {
            rauc: rauc.to_path_buf(),
        }
    }

    /// Asks RAUC for the status of both slots.
    pub async fn read(&self) -> Result<Status, UpdateError> {
        let mut command = Command::new(&self.rauc);
        command
            .args(["status", "--detailed", "--output-format=json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = match tokio::time::timeout(RAUC_TIMEOUT, command.output()).await {
            Err(_) => return Err(UpdateError::Timeout),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(UpdateError::NotInstalled(self.rauc.clone()))
            }
            Ok(Err(e)) => return Err(UpdateError::Failed(e.to_string())),
            Ok(Ok(output)) => output,
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let reason = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message");
            return Err(UpdateError::Failed(format!(
                "{} ({})",
                reason.trim(),
                output.status
            )));
        }
        let json: Value = serde_json::from_slice(&output.stdout)
            .map_err(|e| UpdateError::Unreadable(e.to_string()))?;
        parse(&json)
    }
}

/// Reshapes RAUC's `status --detailed --output-format=json` answer.
pub fn parse(json: &Value) -> Result<Status, UpdateError> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let missing = |what: &str| UpdateError::Unreadable(format!("no {what}"));
    let booted = text(json, "booted").ok_or_else(|| missing("booted slot"))?;
    let primary_name = text(json, "boot_primary");
    let mut slots = Vec::new();
    let mut primary = None;
    for entry in json
        .get("slots")
        .and_then(Value::as_array)
        .ok_or_else(|| missing("slots"))?
    {
        let Some((name, slot)) = entry.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        let status = slot.get("slot_status").unwrap_or(&Value::Null);
        let at = |key: &str| status.get(key).and_then(|v| text(v, "timestamp"));
        let bootname = text(slot, "bootname").unwrap_or_default();
        if primary_name.as_deref() == Some(name.as_str()) {
            primary = Some(bootname.clone());
        }
        slots.push(Slot {
            name: name.clone(),
            bootname,
            device: text(slot, "device").unwrap_or_default(),
            state: text(slot, "state").unwrap_or_default(),
            boot_status: text(slot, "boot_status").unwrap_or_else(|| "unknown".into()),
            bundle_version: status.get("bundle").and_then(|b| text(b, "version")),
            installed_at: at("installed"),
            activated_at: at("activated"),
        });
    }
    let last_install = slots
        .iter()
        .filter_map(|s| s.installed_at.as_ref().map(|at| (at, s)))
        .max_by(|a, b| a.0.cmp(b.0))
        .map(|(at, slot)| LastInstall {
            slot: slot.bootname.clone(),
            bundle_version: slot.bundle_version.clone(),
            installed_at: at.clone(),
            outcome: if slot.bootname == booted {
                "running"
            } else if slot.boot_status == "bad" {
                "rolled back"
            } else if primary.as_deref() == Some(slot.bootname.as_str()) {
                "awaiting reboot"
            } else {
                "inactive"
            },
        });
    Ok(Status {
        compatible: text(json, "compatible").unwrap_or_default(),
        booted,
        primary,
        slots,
        last_install,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `rauc status --detailed --output-format=json` of RAUC 1.8 on the reference image, after
    /// an update to slot b whose gateway never got healthy (slot a booted again).
    fn rolled_back() -> Value {
        json!({
            "compatible": "mcp-edge-amd64-uefi", "variant": "", "booted": "a",
            "boot_primary": "rootfs.0",
            "slots": [
                {"rootfs.0": {"class": "rootfs", "device": "/dev/disk/by-partlabel/rootfs-a",
                    "type": "ext4", "bootname": "a", "state": "booted", "parent": null,
                    "mountpoint": "/", "boot_status": "good",
                    "slot_status": {"bundle": {"compatible": null}}}},
                {"rootfs.1": {"class": "rootfs", "device": "/dev/disk/by-partlabel/rootfs-b",
                    "type": "ext4", "bootname": "b", "state": "inactive", "parent": null,
                    "mountpoint": null, "boot_status": "bad",
                    "slot_status": {
                        "bundle": {"compatible": "mcp-edge-amd64-uefi", "version": "0.1.0+3"},
                        "checksum": {"sha256": "ab", "size": 805306368},
                        "installed": {"timestamp": "2026-12-03T08:10:00Z", "count": 1},
                        "activated": {"timestamp": "2026-12-03T08:10:05Z", "count": 1},
                        "status": "ok"}}}
            ]
        })
    }

    #[test]
    fn a_rolled_back_install_is_reported_as_such() {
        let status = parse(&rolled_back()).unwrap();
        assert_eq!(
            (status.booted.as_str(), status.primary.as_deref()),
            ("a", Some("a"))
        );
        assert_eq!(status.slots.len(), 2);
        assert_eq!(status.slots[0].bundle_version, None);
        let last = status.last_install.unwrap();
        assert_eq!((last.slot.as_str(), last.outcome), ("b", "rolled back"));
        assert_eq!(last.bundle_version.as_deref(), Some("0.1.0+3"));
    }

    #[test]
    fn an_install_is_awaiting_reboot_then_running() {
        let mut json = rolled_back();
        json["boot_primary"] = json!("rootfs.1");
        json["slots"][1]["rootfs.1"]["boot_status"] = json!("good");
        let last = parse(&json).unwrap().last_install.unwrap();
        assert_eq!(last.outcome, "awaiting reboot");
        json["booted"] = json!("b");
        assert_eq!(
            parse(&json).unwrap().last_install.unwrap().outcome,
            "running"
        );
        json["boot_primary"] = json!("rootfs.0");
        json["booted"] = json!("a");
        assert_eq!(
            parse(&json).unwrap().last_install.unwrap().outcome,
            "inactive"
        );
    }

    #[test]
    fn an_answer_without_slots_is_unreadable_not_a_panic() {
        for bad in [
            json!({}),
            json!({"booted": "a"}),
            json!({"booted": "a", "slots": 3}),
        ] {
            assert!(
                matches!(parse(&bad), Err(UpdateError::Unreadable(_))),
                "{bad}"
            );
        }
        let empty = parse(&json!({"booted": "a", "slots": [1, {}]})).unwrap();
        assert!(empty.slots.is_empty() && empty.last_install.is_none());
    }
}
