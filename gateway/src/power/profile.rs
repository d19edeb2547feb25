//! Which power profile the device should run in, decided from what sysfs says: AC presence,
//! battery level and thermal headroom, with hysteresis so that a reading wobbling around a
//! threshold does not flip the profile back and forth. Pure logic: the readings come in, a
//! profile and the reason for it come out.

use serde::Serialize;

use crate::config::{PowerConfig, PowerProfile};
use crate::device::{self, PowerSupply, SystemRoot, ThermalZone};

/// A power profile. What each one does to cpufreq, the local model and the background work is
/// decided where the profile is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    Performance,
    Balanced,
    LowPower,
}

impl Profile {
    pub const ALL: [Self; 3] = [Self::Performance, Self::Balanced, Self::LowPower];

    /// The fixed profile of a `power.profile` setting; `None` for `auto`.
    pub fn from_setting(setting: PowerProfile) -> Option<Self> {
        match setting {
            PowerProfile::Auto => None,
            PowerProfile::Performance => Some(Self::Performance),
            PowerProfile::Balanced => Some(Self::Balanced),
            PowerProfile::LowPower => Some(Self::LowPower),
        }
    }

    /// The name used in the configuration, the API, logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Performance => "performance",
            Self::Balanced => "balanced",
            Self::LowPower => "low-power",
        }
    }
}

/// What the automatic choice looks at.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Readings {
    /// `Some(true)`: a mains or USB supply is online; `None`: the device reports none.
    pub on_external_power: Option<bool>,
    /// The lowest battery charge, when there is a battery.
    pub battery_percent: Option<u8>,
    /// Degrees between the hottest zone and its trip point (the smallest margin), when a zone
    /// has one.
    pub thermal_headroom_celsius: Option<f64>,
}

impl Readings {
    /// What the system under `root` reports now.
    pub fn read(root: &SystemRoot) -> Self {
        Self::of(&device::power_supplies(root), &device::thermal_zones(root))
    }

    /// The readings in supplies and zones read already.
    pub fn of(supplies: &[PowerSupply], zones: &[ThermalZone]) -> Self {
        let headroom = zones
            .iter()
            .filter_map(|zone| Some(zone.trip_celsius? - zone.celsius?))
            .reduce(f64::min);
        Self {
            on_external_power: device::on_external_power(supplies),
            battery_percent: device::battery_percent(supplies),
            thermal_headroom_celsius: headroom,
        }
    }
}

/// The thresholds of the automatic choice; each is left again only `hysteresis` past it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// At or below this charge on battery: low-power.
    pub battery_low_percent: u8,
    /// At or below this charge on battery: no local inference (the cloud or the queue answer).
    pub battery_critical_percent: u8,
    pub battery_hysteresis_percent: u8,
    /// Closer than this to a trip point: low-power, before the kernel throttles.
    pub thermal_margin_celsius: f64,
    pub thermal_hysteresis_celsius: f64,
}

impl Thresholds {
    /// `[power]`'s thresholds; the hysteresis bands are fixed.
    pub fn from_config(config: &PowerConfig) -> Self {
        Self {
            battery_low_percent: config.battery_low_percent,
            battery_critical_percent: config.battery_critical_percent,
            thermal_margin_celsius: f64::from(config.thermal_margin_celsius),
            ..Self::default()
        }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            battery_low_percent: 30,
            battery_critical_percent: 10,
            battery_hysteresis_percent: 5,
            thermal_margin_celsius: 15.0,
            thermal_hysteresis_celsius: 5.0,
        }
    }
}

/// A decision: the profile, whether the local model may run, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub profile: Profile,
    pub local_inference: bool,
    pub reason: String,
}

/// The automatic choice and the state its hysteresis needs.
#[derive(Debug, Clone)]
pub struct AutoProfile {
    thresholds: Thresholds,
    battery_low: bool,
    battery_critical: bool,
    too_hot: bool,
    last: Option<Decision>,
}

impl AutoProfile {
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            thresholds,
            battery_low: false,
            battery_critical: false,
            too_hot: false,
            last: None,
        }
    }

    /// The decision for `readings`, and whether it differs from the previous one (a switch
    /// to log).
    pub fn decide(&mut self, readings: &Readings) -> (Decision, bool) {
        let t = self.thresholds;
        let on_battery = readings.on_external_power == Some(false);
        let battery = readings.battery_percent.filter(|_| on_battery);
        self.battery_low = latch(
            self.battery_low,
            battery.map(f64::from),
            f64::from(t.battery_low_percent),
            f64::from(t.battery_hysteresis_percent),
        );
        self.battery_critical = latch(
            self.battery_critical,
            battery.map(f64::from),
            f64::from(t.battery_critical_percent),
            f64::from(t.battery_hysteresis_percent),
        );
        self.too_hot = latch(
            self.too_hot,
            readings.thermal_headroom_celsius,
            t.thermal_margin_celsius,
            t.thermal_hysteresis_celsius,
        );

        let (profile, reason) = if self.too_hot {
            let headroom = readings.thermal_headroom_celsius.unwrap_or_default();
            (
                Profile::LowPower,
                format!(
                    "{headroom:.1} °C below a thermal trip point (margin {:.0} °C)",
                    t.thermal_margin_celsius
                ),
            )
        } else if let Some(percent) = battery.filter(|_| self.battery_low) {
            (Profile::LowPower, format!("on battery at {percent} %"))
        } else if let Some(percent) = battery {
            (Profile::Balanced, format!("on battery at {percent} %"))
        } else if readings.on_external_power == Some(true) {
            (Profile::Performance, "on external power".to_owned())
        } else {
            (Profile::Balanced, "no power supply reported".to_owned())
        };
        let local_inference = !self.battery_critical;
        let reason = if local_inference {
            reason
        } else {
            format!(
                "{reason}, at or below the critical {} %: local inference off",
                t.battery_critical_percent
            )
        };
        let decision = Decision {
            profile,
            local_inference,
            reason,
        };
        let switched = self.last.as_ref().is_none_or(|last| {
            last.profile != decision.profile || last.local_inference != decision.local_inference
        });
        self.last = Some(decision.clone());
        (decision, switched)
    }
}

/// A state that turns on at or below `threshold` and off again only above `threshold + band`;
/// a missing value turns it off.
fn latch(on: bool, value: Option<f64>, threshold: f64, band: f64) -> bool {
    match value {
        None => false,
        Some(v) if v <= threshold => true,
        Some(v) if v > threshold + band => false,
        Some(_) => on,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_battery(percent: u8) -> Readings {
        Readings {
            on_external_power: Some(false),
            battery_percent: Some(percent),
            thermal_headroom_celsius: Some(40.0),
        }
    }

    #[test]
    fn the_battery_drains_and_charges_without_flapping() {
        let mut auto = AutoProfile::new(Thresholds::default());
        let mut switches = Vec::new();
        // Down from 60 % to 5 %, then back up to 60 %, wobbling by one percent at each step.
        let levels: Vec<u8> = (5..=60).rev().chain(5..=60).collect();
        for level in levels {
            for wobble in [level, level.saturating_add(1), level] {
                let (decision, switched) = auto.decide(&on_battery(wobble));
                if switched {
                    switches.push((wobble, decision.profile, decision.local_inference));
                }
            }
        }
        assert_eq!(
            switches,
            [
                (60, Profile::Balanced, true),
                (30, Profile::LowPower, true),
                (10, Profile::LowPower, false),
                (16, Profile::LowPower, true),
                (36, Profile::Balanced, true),
            ]
        );
    }

    #[test]
    fn external_power_and_heat() {
        let mut auto = AutoProfile::new(Thresholds::default());
        let mains = |headroom: f64| Readings {
            on_external_power: Some(true),
            battery_percent: Some(5),
            thermal_headroom_celsius: Some(headroom),
        };
        let (decision, _) = auto.decide(&mains(40.0));
        assert_eq!(decision.profile, Profile::Performance);
        assert!(
            decision.local_inference,
            "a low battery on mains is charging"
        );
        // A thermal ramp: low-power at 15 °C from the trip point, back only past 20 °C.
        let ramp = [30.0, 20.0, 15.5, 15.0, 12.0, 18.0, 19.9, 20.5];
        let profiles: Vec<Profile> = ramp
            .iter()
            .map(|h| auto.decide(&mains(*h)).0.profile)
            .collect();
        use Profile::{LowPower, Performance};
        assert_eq!(
            profiles,
            [
                Performance,
                Performance,
                Performance,
                LowPower,
                LowPower,
                LowPower,
                LowPower,
                Performance
            ]
        );
        let (decision, _) = auto.decide(&mains(10.0));
        assert!(
            decision
                .reason
                .contains("10.0 °C below a thermal trip point"),
            "{}",
            decision.reason
        );
    }

    #[test]
    fn readings_from_a_laptop_and_a_pi() {
        let fixture = |name: &str| {
            SystemRoot::new(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures")
                    .join(name),
            )
        };
        let laptop = Readings::read(&fixture("sysroot-laptop"));
        assert_eq!(laptop.on_external_power, Some(false));
        assert_eq!(laptop.battery_percent, Some(64));
        assert_eq!(laptop.thermal_headroom_celsius, Some(57.0));
        let pi = Readings::read(&fixture("sysroot-rpi4"));
        assert_eq!((pi.on_external_power, pi.battery_percent), (None, None));
        let headroom = pi.thermal_headroom_celsius.unwrap();
        assert!((headroom - 61.688).abs() < 1e-9, "{headroom}");
    }

    #[test]
    fn a_device_that_reports_no_supply_runs_balanced() {
        let mut auto = AutoProfile::new(Thresholds::default());
        let (decision, switched) = auto.decide(&Readings::default());
        assert_eq!(decision.profile, Profile::Balanced);
        assert!(decision.local_inference && switched);
        assert_eq!(decision.reason, "no power supply reported");
        assert!(
            !auto.decide(&Readings::default()).1,
            "the same reading is not a switch"
        );
    }
}
