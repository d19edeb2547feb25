//! Temperatures and other sensors: thermal zones, hwmon chips and IIO devices.

use std::path::Path;

use serde::Serialize;

use super::{file_name, read_number, read_trimmed, SystemRoot};

/// `/sys/class/thermal/thermal_zoneN`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThermalZone {
    pub zone: String,
    /// What the zone measures (`cpu-thermal`, `x86_pkg_temp`, ...).
    pub kind: Option<String>,
    pub celsius: Option<f64>,
    /// The first passive or critical trip point, where throttling or shutdown starts.
    pub trip_celsius: Option<f64>,
}

/// One reading of a hwmon chip (`/sys/class/hwmon/hwmonN`), in SI units.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HwmonSensor {
    pub chip: String,
    pub sensor: String,
    pub label: Option<String>,
    /// `celsius`, `volts`, `amperes`, `watts` or `rpm`.
    pub unit: &'static str,
    pub value: f64,
}

/// One channel of an IIO device (`/sys/bus/iio/devices/iio:deviceN`): `(raw + offset) * scale`,
/// or the `_input` value when the driver provides one, converted from the IIO ABI's units
/// (milli-degrees, millivolts, milli-percent) to SI where the channel type is known.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IioSensor {
    pub device: String,
    pub name: Option<String>,
    pub channel: String,
    /// `celsius`, `volts`, `amperes`, `kilopascals`, `percent`, `lux`, or `raw` for channel
    /// types without a fixed unit.
    pub unit: &'static str,
    pub value: f64,
}

/// IIO channel types, their unit and the divisor from the ABI value (Documentation/ABI/testing/
/// sysfs-bus-iio) to that unit.
const IIO_KINDS: [(&str, &str, f64); 6] = [
    ("temp", "celsius", 1000.0),
    ("voltage", "volts", 1000.0),
    ("current", "amperes", 1000.0),
    ("pressure", "kilopascals", 1.0),
    ("humidityrelative", "percent", 1000.0),
    ("illuminance", "lux", 1.0),
];

pub fn thermal_zones(root: &SystemRoot) -> Vec<ThermalZone> {
    root.entries("/sys/class/thermal", "thermal_zone")
        .into_iter()
        .map(|dir| {
            let trip = (0..8).find_map(|i| {
                let kind = read_trimmed(&dir.join(format!("trip_point_{i}_type")))?;
                if kind != "passive" && kind != "critical" && kind != "hot" {
                    return None;
                }
                // Drivers report a disabled trip point as 0 (x86_pkg_temp does).
                read_number::<f64>(&dir.join(format!("trip_point_{i}_temp")))
                    .map(|m| m / 1000.0)
                    .filter(|celsius| *celsius > 0.0)
            });
            ThermalZone {
                zone: file_name(&dir),
                kind: read_trimmed(&dir.join("type")),
                celsius: read_number::<f64>(&dir.join("temp")).map(|m| m / 1000.0),
                trip_celsius: trip,
            }
        })
        .collect()
}

/// hwmon attribute prefixes, their unit and the divisor from the sysfs integer to SI.
const HWMON_KINDS: [(&str, &str, f64); 5] = [
    ("temp", "celsius", 1000.0),
    ("in", "volts", 1000.0),
    ("curr", "amperes", 1000.0),
    ("power", "watts", 1e6),
    ("fan", "rpm", 1.0),
];

pub fn hwmon_sensors(root: &SystemRoot) -> Vec<HwmonSensor> {
    let mut sensors = Vec::new();
    for dir in root.entries("/sys/class/hwmon", "hwmon") {
        let chip = read_trimmed(&dir.join("name")).unwrap_or_else(|| file_name(&dir));
        for input in file_names(&dir, |n| n.ends_with("_input")) {
            let sensor = input.trim_end_matches("_input");
            let Some((_, unit, divisor)) = HWMON_KINDS
                .iter()
                .find(|(prefix, _, _)| sensor.strip_prefix(prefix).is_some_and(is_index))
            else {
                continue;
            };
            let Some(raw) = read_number::<f64>(&dir.join(&input)) else {
                continue;
            };
            sensors.push(HwmonSensor {
                chip: chip.clone(),
                sensor: sensor.to_owned(),
                label: read_trimmed(&dir.join(format!("{sensor}_label"))),
                unit,
                value: raw / divisor,
            });
        }
    }
    sensors
}

/// Names of the files in `dir` that `keep` accepts, sorted.
fn file_names(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| keep(n))
        .collect();
    names.sort();
    names
}

fn is_index(rest: &str) -> bool {
    !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit())
}

pub fn iio_sensors(root: &SystemRoot) -> Vec<IioSensor> {
    let mut sensors = Vec::new();
    for dir in root.entries("/sys/bus/iio/devices", "iio:device") {
        let device = file_name(&dir);
        let name = read_trimmed(&dir.join("name"));
        let files = file_names(&dir, |n| {
            n.starts_with("in_") && (n.ends_with("_raw") || n.ends_with("_input"))
        });
        for file in &files {
            let (channel, value) = if let Some(channel) = file.strip_suffix("_input") {
                (channel, read_number::<f64>(&dir.join(file)))
            } else {
                let channel = file.trim_end_matches("_raw");
                if files
                    .iter()
                    .any(|f| f.strip_suffix("_input") == Some(channel))
                {
                    continue; // the driver already gives the processed value
                }
                (channel, raw_value(&dir, channel))
            };
            let channel = channel.trim_start_matches("in_");
            let kind = channel.trim_end_matches(|c: char| c.is_ascii_digit());
            let (unit, divisor) = IIO_KINDS
                .iter()
                .find(|(k, _, _)| *k == kind)
                .map_or(("raw", 1.0), |(_, u, d)| (*u, *d));
            if let Some(value) = value {
                sensors.push(IioSensor {
                    device: device.clone(),
                    name: name.clone(),
                    channel: channel.to_owned(),
                    unit,
                    value: value / divisor,
                });
            }
        }
    }
    sensors
}

/// `(raw + offset) * scale`; scale and offset may be per channel or shared by the channel type
/// (`in_temp_scale` for `in_temp0_raw`).
fn raw_value(dir: &Path, channel: &str) -> Option<f64> {
    let raw: f64 = read_number(&dir.join(format!("{channel}_raw")))?;
    let shared = channel.trim_end_matches(|c: char| c.is_ascii_digit());
    let attribute = |suffix: &str| {
        read_number::<f64>(&dir.join(format!("{channel}_{suffix}")))
            .or_else(|| read_number(&dir.join(format!("{shared}_{suffix}"))))
    };
    Some((raw + attribute("offset").unwrap_or(0.0)) * attribute("scale").unwrap_or(1.0))
}
