//! Facts about the device, read from procfs and sysfs under a configurable root so that tests
//! can point it at a fixture tree. Missing files are normal (a VM has no thermal zones, a PC no
//! device tree): they give `None` or an empty list, never an error.

mod network;
mod power;
mod sensors;
mod system;

use std::path::{Path, PathBuf};

pub use network::{network_links, NetworkLink};
pub use power::{
    battery_percent, cpufreq_policies, on_external_power, power_supplies, CpuFreqPolicy,
    PowerSupply,
};
pub use sensors::{hwmon_sensors, iio_sensors, thermal_zones, HwmonSensor, IioSensor, ThermalZone};
pub use system::{
    cpu_times, load_average, system_info, CpuTimes, DiskUsage, LoadAverage, Memory, SystemInfo,
};

/// Where `/proc`, `/sys` and `/etc` are read from: `/` on a device, a fixture tree in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemRoot(PathBuf);

impl Default for SystemRoot {
    fn default() -> Self {
        Self(PathBuf::from("/"))
    }
}

impl SystemRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self(root.into())
    }

    /// The path of an absolute system path (`/proc/uptime`) under this root.
    pub fn path(&self, absolute: &str) -> PathBuf {
        self.0.join(absolute.trim_start_matches('/'))
    }

    pub fn root(&self) -> &Path {
        &self.0
    }

    /// A file's content without surrounding whitespace, or `None` if it cannot be read.
    fn read(&self, absolute: &str) -> Option<String> {
        read_trimmed(&self.path(absolute))
    }

    /// Entries of a directory whose names start with `prefix`, sorted by name.
    fn entries(&self, absolute: &str, prefix: &str) -> Vec<PathBuf> {
        let Ok(dir) = std::fs::read_dir(self.path(absolute)) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = dir
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .map(|e| e.path())
            .collect();
        paths.sort_by_key(|p| natural_key(p));
        paths
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    // Device-tree strings end in NUL.
    Some(
        text.trim_matches(|c: char| c.is_whitespace() || c == '\0')
            .to_owned(),
    )
}

fn read_number<T: std::str::FromStr>(path: &Path) -> Option<T> {
    read_trimmed(path)?.parse().ok()
}

/// Sort key that puts `hwmon2` before `hwmon10`.
fn natural_key(path: &Path) -> (String, u64) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let digits_at = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    let number = name[digits_at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>();
    (name[..digits_at].to_owned(), number.parse().unwrap_or(0))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> SystemRoot {
        SystemRoot::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sysroot-rpi4"
        ))
    }

    #[test]
    fn system_facts_come_from_the_root() {
        let root = fixture();
        let info = system_info(&root, root.root());
        assert_eq!(info.hostname.as_deref(), Some("edge-pi-07"));
        assert_eq!(
            info.model.as_deref(),
            Some("Raspberry Pi 4 Model B Rev 1.4")
        );
        assert_eq!(info.os.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(info.kernel.as_deref(), Some("6.6.51+rpt-rpi-v8"));
        assert_eq!(info.cpus, 4);
        assert_eq!(info.uptime_seconds, Some(86400.52));
        assert_eq!(
            info.load,
            Some(LoadAverage {
                one: 0.52,
                five: 0.34,
                fifteen: 0.2
            })
        );
        let memory = info.memory.unwrap();
        assert_eq!(memory.total_bytes, 3_884_084 * 1024);
        assert_eq!(memory.available_bytes, 2_998_120 * 1024);
        assert!(info.disk.unwrap().total_bytes > 0);
    }

    #[test]
    fn thermal_zones_in_celsius_with_trip_points() {
        let zones = thermal_zones(&fixture());
        assert_eq!(zones.len(), 2);
        assert_eq!(zones[0].kind.as_deref(), Some("cpu-thermal"));
        assert_eq!(zones[0].celsius, Some(48.312));
        assert_eq!(zones[0].trip_celsius, Some(110.0));
        assert_eq!(zones[1].trip_celsius, None);
        let laptop = SystemRoot::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sysroot-laptop"
        ));
        let zones = thermal_zones(&laptop);
        assert_eq!(zones[0].trip_celsius, Some(103.0));
        assert_eq!(
            zones[1].trip_celsius, None,
            "x86_pkg_temp's disabled trip point (0) is not a trip point"
        );
    }

    #[test]
    fn hwmon_readings_in_si_units_in_natural_order() {
        let sensors = hwmon_sensors(&fixture());
        let summary: Vec<(&str, &str, &str, f64)> = sensors
            .iter()
            .map(|s| (s.chip.as_str(), s.sensor.as_str(), s.unit, s.value))
            .collect();
        assert_eq!(
            summary,
            [
                ("cpu_thermal", "temp1", "celsius", 48.312),
                ("ina3221", "curr1", "amperes", 1.24),
                ("ina3221", "in1", "volts", 5.072),
                ("pwmfan", "fan1", "rpm", 2150.0),
                ("pwmfan", "power1", "watts", 6.29),
            ]
        );
        assert_eq!(sensors[2].label.as_deref(), Some("VDD_IN"));
    }

    #[test]
    fn iio_channels_are_scaled() {
        let sensors = iio_sensors(&fixture());
        let summary: Vec<(&str, &str, f64)> = sensors
            .iter()
            .map(|s| (s.channel.as_str(), s.unit, s.value))
            .collect();
        assert_eq!(
            summary,
            [
                ("humidityrelative", "percent", 45.123),
                ("pressure", "kilopascals", 101.325),
                ("temp", "celsius", 23.45),
                ("voltage0", "volts", 3.0),
                ("voltage1", "volts", 1.0),
            ]
        );
        assert_eq!(sensors[0].name.as_deref(), Some("bme280"));
    }

    #[test]
    fn network_links_with_state_and_counters() {
        let links = network_links(&fixture());
        let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["eth0", "lo", "wlan0"]);
        assert_eq!(links[0].operstate.as_deref(), Some("up"));
        assert_eq!(links[0].carrier, Some(true));
        assert_eq!(links[0].speed_mbps, Some(1000));
        assert_eq!(links[0].rx_bytes, Some(123_456_789));
        assert!(links[2].wireless);
        assert_eq!(links[2].carrier, None);
    }

    #[test]
    fn an_empty_root_gives_empty_answers_not_errors() {
        let dir = tempfile::tempdir().unwrap();
        let root = SystemRoot::new(dir.path());
        assert!(thermal_zones(&root).is_empty());
        assert!(hwmon_sensors(&root).is_empty());
        assert!(network_links(&root).is_empty());
        let info = system_info(&root, dir.path());
        assert_eq!(info.model, None);
        assert!(info.cpus >= 1);
    }
}
