//! Which reading a stream samples, named as the `device_sensors` tool reports it.

use std::fmt;
use std::str::FromStr;

use crate::device::{self, SystemRoot};

/// A sensor reading: `thermal/ZONE`, `hwmon/CHIP/SENSOR` or `iio/DEVICE/CHANNEL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sensor {
    /// A thermal zone by directory name (`thermal_zone0`) or type (`cpu-thermal`).
    Thermal { zone: String },
    /// A hwmon reading by chip name (`ina3221`, or `hwmonN` for a chip without one) and sensor
    /// (`curr1`).
    Hwmon { chip: String, sensor: String },
    /// An IIO channel by device (`iio:device0`) or its name (`bme280`), and channel (`temp`).
    Iio { device: String, channel: String },
}

/// One value read, in the unit `device_sensors` reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub value: f64,
    pub unit: &'static str,
}

const FORMS: &str = "thermal/ZONE, hwmon/CHIP/SENSOR or iio/DEVICE/CHANNEL \
                     (as the device_sensors tool names them)";

impl FromStr for Sensor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let named = |part: &&str| !part.is_empty();
        match parts.as_slice() {
            ["thermal", zone] if named(zone) => Ok(Self::Thermal {
                zone: (*zone).to_owned(),
            }),
            ["hwmon", chip, sensor] if named(chip) && named(sensor) => Ok(Self::Hwmon {
                chip: (*chip).to_owned(),
                sensor: (*sensor).to_owned(),
            }),
            ["iio", device, channel] if named(device) && named(channel) => Ok(Self::Iio {
                device: (*device).to_owned(),
                channel: (*channel).to_owned(),
            }),
            _ => Err(format!("\"{text}\" is not a sensor; use {FORMS}")),
        }
    }
}

impl fmt::Display for Sensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Thermal { zone } => write!(f, "thermal/{zone}"),
            Self::Hwmon { chip, sensor } => write!(f, "hwmon/{chip}/{sensor}"),
            Self::Iio { device, channel } => write!(f, "iio/{device}/{channel}"),
        }
    }
}

impl Sensor {
    /// Reads the sensor now; the error says what is missing, for the stream's status.
    pub fn read(&self, root: &SystemRoot) -> Result<Reading, String> {
        let value = match self {
            Self::Thermal { zone } => device::thermal_zones(root)
                .into_iter()
                .find(|z| &z.zone == zone || z.kind.as_ref() == Some(zone))
                .map(|z| {
                    z.celsius.map(|value| Reading {
                        value,
                        unit: "celsius",
                    })
                }),
            Self::Hwmon { chip, sensor } => device::hwmon_sensors(root)
                .into_iter()
                .find(|s| &s.chip == chip && &s.sensor == sensor)
                .map(|s| {
                    Some(Reading {
                        value: s.value,
                        unit: s.unit,
                    })
                }),
            Self::Iio { device, channel } => device::iio_sensors(root)
                .into_iter()
                .find(|s| {
                    (&s.device == device || s.name.as_ref() == Some(device))
                        && &s.channel == channel
                })
                .map(|s| {
                    Some(Reading {
                        value: s.value,
                        unit: s.unit,
                    })
                }),
        };
        match value {
            None => Err(format!("no sensor {self} on this device")),
            Some(None) => Err(format!("{self} has no readable value")),
            Some(Some(reading)) if !reading.value.is_finite() => {
                Err(format!("{self} reads {}, not a number", reading.value))
            }
            Some(Some(reading)) => Ok(reading),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpi4() -> SystemRoot {
        SystemRoot::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sysroot-rpi4"
        ))
    }

    fn read(sensor: &str) -> Result<Reading, String> {
        sensor.parse::<Sensor>()?.read(&rpi4())
    }

    #[test]
    fn each_form_reads_its_sensor() {
        let reading = |s| read(s).map(|r| (r.value, r.unit));
        assert_eq!(reading("thermal/thermal_zone0"), Ok((48.312, "celsius")));
        assert_eq!(reading("thermal/cpu-thermal"), Ok((48.312, "celsius")));
        assert_eq!(reading("hwmon/ina3221/curr1"), Ok((1.24, "amperes")));
        assert_eq!(
            reading("iio/bme280/humidityrelative"),
            Ok((45.123, "percent"))
        );
        assert_eq!(
            reading("iio/iio:device0/pressure"),
            Ok((101.325, "kilopascals"))
        );
    }

    #[test]
    fn a_missing_sensor_is_named() {
        assert_eq!(
            read("hwmon/ina3221/curr9"),
            Err("no sensor hwmon/ina3221/curr9 on this device".to_owned())
        );
    }

    #[test]
    fn malformed_names_are_refused_with_the_forms() {
        for bad in [
            "",
            "thermal",
            "thermal/",
            "hwmon/ina3221",
            "iio//temp",
            "gpio/x/y",
        ] {
            let error = bad.parse::<Sensor>().unwrap_err();
            assert!(error.contains("hwmon/CHIP/SENSOR"), "{bad}: {error}");
        }
        let round_trip = "hwmon/ina3221/curr1".parse::<Sensor>().unwrap().to_string();
        assert_eq!(round_trip, "hwmon/ina3221/curr1");
    }
}
