//! Power state: supplies (`/sys/class/power_supply`: mains, USB, batteries) and CPU frequency
//! policies (`/sys/devices/system/cpu/cpufreq/policyN`). A VM or a board without a battery
//! simply has fewer entries.

use serde::Serialize;

use super::{file_name, read_number, read_trimmed, SystemRoot};

/// One `/sys/class/power_supply/NAME`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerSupply {
    pub name: String,
    /// `Mains`, `USB`, `Battery`, `UPS`, …
    pub kind: Option<String>,
    /// For mains and USB: whether power comes in.
    pub online: Option<bool>,
    /// For batteries: `Charging`, `Discharging`, `Full`, `Not charging`.
    pub status: Option<String>,
    pub capacity_percent: Option<u8>,
    /// The battery's draw or charge rate.
    pub power_watts: Option<f64>,
}

/// One cpufreq policy: the CPUs it governs and its frequency limits, in kHz as sysfs gives them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuFreqPolicy {
    pub policy: String,
    pub cpus: Vec<u32>,
    pub driver: Option<String>,
    pub governor: Option<String>,
    pub available_governors: Vec<String>,
    pub current_khz: Option<u32>,
    /// The limits the governor works within (`scaling_min_freq`, `scaling_max_freq`).
    pub min_khz: Option<u32>,
    pub max_khz: Option<u32>,
    /// What the hardware can do (`cpuinfo_min_freq`, `cpuinfo_max_freq`).
    pub hardware_min_khz: Option<u32>,
    pub hardware_max_khz: Option<u32>,
    /// The discrete steps, where the driver lists them (not intel_pstate or amd-pstate).
    pub available_khz: Vec<u32>,
}

pub fn power_supplies(root: &SystemRoot) -> Vec<PowerSupply> {
    root.entries("/sys/class/power_supply", "")
        .into_iter()
        .map(|dir| PowerSupply {
            name: file_name(&dir),
            kind: read_trimmed(&dir.join("type")),
            online: read_number::<u8>(&dir.join("online")).map(|v| v == 1),
            status: read_trimmed(&dir.join("status")),
            capacity_percent: read_number(&dir.join("capacity")),
            // power_now is in microwatts; some batteries give current and voltage instead.
            power_watts: read_number::<f64>(&dir.join("power_now"))
                .map(|uw| uw / 1e6)
                .or_else(|| {
                    let ua = read_number::<f64>(&dir.join("current_now"))?;
                    let uv = read_number::<f64>(&dir.join("voltage_now"))?;
                    Some(ua * uv / 1e12)
                }),
        })
        .collect()
}

pub fn cpufreq_policies(root: &SystemRoot) -> Vec<CpuFreqPolicy> {
    root.entries("/sys/devices/system/cpu/cpufreq", "policy")
        .into_iter()
        .map(|dir| {
            let words = |name: &str| -> Vec<String> {
                read_trimmed(&dir.join(name))
                    .map(|t| t.split_whitespace().map(str::to_owned).collect())
                    .unwrap_or_default()
            };
            let numbers = |name: &str| -> Vec<u32> {
                words(name).iter().filter_map(|w| w.parse().ok()).collect()
            };
            let khz = |name: &str| read_number::<u32>(&dir.join(name));
            CpuFreqPolicy {
                policy: file_name(&dir),
                cpus: numbers("affected_cpus"),
                driver: read_trimmed(&dir.join("scaling_driver")),
                governor: read_trimmed(&dir.join("scaling_governor")),
                available_governors: words("scaling_available_governors"),
                current_khz: khz("scaling_cur_freq"),
                min_khz: khz("scaling_min_freq"),
                max_khz: khz("scaling_max_freq"),
                hardware_min_khz: khz("cpuinfo_min_freq"),
                hardware_max_khz: khz("cpuinfo_max_freq"),
                available_khz: numbers("scaling_available_frequencies"),
            }
        })
        .collect()
}

/// Whether external power is present: `Some(true)` when a mains or USB supply is online,
/// `Some(false)` when there are such supplies and none is, `None` when the device reports no
/// supply of that kind (a board powered without reporting it, a VM).
pub fn on_external_power(supplies: &[PowerSupply]) -> Option<bool> {
    let external: Vec<&PowerSupply> = supplies
        .iter()
        .filter(|s| matches!(s.kind.as_deref(), Some("Mains" | "USB")))
        .collect();
    (!external.is_empty()).then(|| external.iter().any(|s| s.online == Some(true)))
}

/// The charge of the batteries (the lowest, when there are several), if any report one.
pub fn battery_percent(supplies: &[PowerSupply]) -> Option<u8> {
    supplies
        .iter()
        .filter(|s| s.kind.as_deref() == Some("Battery"))
        .filter_map(|s| s.capacity_percent)
        .min()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn fixture(name: &str) -> SystemRoot {
        SystemRoot::new(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
        )
    }

    #[test]
    fn a_laptop_on_battery() {
        let supplies = power_supplies(&fixture("sysroot-laptop"));
        assert_eq!(supplies.len(), 2);
        assert_eq!(supplies[0].name, "AC");
        assert_eq!(supplies[0].online, Some(false));
        let battery = &supplies[1];
        assert_eq!(battery.status.as_deref(), Some("Discharging"));
        assert_eq!(battery.capacity_percent, Some(64));
        assert_eq!(battery.power_watts, Some(7.452));
        assert_eq!(on_external_power(&supplies), Some(false));
        assert_eq!(battery_percent(&supplies), Some(64));

        let policies = cpufreq_policies(&fixture("sysroot-laptop"));
        assert_eq!(policies.len(), 4);
        assert_eq!(policies[2].cpus, vec![2]);
        assert_eq!(policies[2].driver.as_deref(), Some("intel_pstate"));
        assert_eq!(
            policies[2].available_governors,
            ["performance", "powersave"]
        );
        assert_eq!(policies[2].current_khz, Some(1_400_000));
        assert_eq!(policies[2].hardware_max_khz, Some(4_700_000));
        assert!(policies[2].available_khz.is_empty());
    }

    #[test]
    fn a_raspberry_pi_has_one_policy_and_reports_no_supply() {
        let root = fixture("sysroot-rpi4");
        let supplies = power_supplies(&root);
        assert!(supplies.is_empty());
        assert_eq!(on_external_power(&supplies), None);
        assert_eq!(battery_percent(&supplies), None);
        let policies = cpufreq_policies(&root);
        assert_eq!(policies.len(), 1);
        let policy = &policies[0];
        assert_eq!(policy.cpus, vec![0, 1, 2, 3]);
        assert_eq!(policy.governor.as_deref(), Some("ondemand"));
        assert_eq!(policy.available_khz.len(), 13);
        assert_eq!(policy.available_khz.first(), Some(&600_000));
        assert_eq!(policy.max_khz, Some(1_800_000));
    }

    #[test]
    fn a_root_without_sysfs_gives_nothing() {
        let root = SystemRoot::new("/nonexistent");
        assert!(power_supplies(&root).is_empty());
        assert!(cpufreq_policies(&root).is_empty());
    }
}
