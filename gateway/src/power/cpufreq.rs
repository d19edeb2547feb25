//! What a profile asks of cpufreq, as the exact sysfs writes per policy: a governor the driver
//! offers, and a frequency ceiling (`scaling_max_freq`) from `cpu_throttle_percent`, lower
//! still in low-power, on one of the driver's steps where it lists them. Only what differs
//! from the current setting is written.
//!
//! With `power.cpufreq = "helper"` the gateway, which has no right to write sysfs, writes only
//! a [`Request`] (a profile and a percentage) to a file; the root `mcp-gateway cpufreq apply`
//! run by `mcp-gateway-cpufreq.service` reads it, plans the writes itself, and makes them. The
//! request names nothing but a profile and a number, so the gateway cannot steer the helper to
//! any other file or value.

use serde::Serialize;

use super::profile::Profile;
use crate::device::{CpuFreqPolicy, SystemRoot};

/// One write to a sysfs file (an absolute system path, resolved under the system root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysfsWrite {
    pub path: String,
    pub value: String,
}

/// The ceiling low-power keeps, as a share of the hardware maximum.
const LOW_POWER_CEILING_PERCENT: u8 = 50;

/// Governors in order of preference per profile; the first the driver offers is used.
/// intel_pstate and amd-pstate offer only `performance` and `powersave` (which is dynamic there).
fn governors(profile: Profile) -> &'static [&'static str] {
    match profile {
        Profile::Performance => &["performance", "schedutil", "ondemand"],
        Profile::Balanced => &["schedutil", "ondemand", "conservative", "powersave"],
        Profile::LowPower => &["conservative", "powersave", "schedutil", "ondemand"],
    }
}

/// The writes that put every policy in `profile` with the ceiling `throttle_percent` of the
/// hardware maximum (1–100).
pub fn plan(profile: Profile, policies: &[CpuFreqPolicy], throttle_percent: u8) -> Vec<SysfsWrite> {
    let percent = match profile {
        Profile::LowPower => throttle_percent.min(LOW_POWER_CEILING_PERCENT),
        Profile::Performance | Profile::Balanced => throttle_percent,
    };
    let mut writes = Vec::new();
    for policy in policies {
        let file = |name: &str| format!("/sys/devices/system/cpu/cpufreq/{}/{name}", policy.policy);
        let governor = governors(profile)
            .iter()
            .find(|g| policy.available_governors.iter().any(|a| a == *g));
        if let Some(governor) = governor.filter(|g| policy.governor.as_deref() != Some(**g)) {
            writes.push(SysfsWrite {
                path: file("scaling_governor"),
                value: (*governor).to_owned(),
            });
        }
        if let Some(ceiling) = ceiling_khz(policy, percent).filter(|c| policy.max_khz != Some(*c)) {
            writes.push(SysfsWrite {
                path: file("scaling_max_freq"),
                value: ceiling.to_string(),
            });
        }
    }
    writes
}

/// `percent` of the hardware maximum, not below the hardware minimum, and on the highest
/// listed step at or below it when the driver lists steps.
fn ceiling_khz(policy: &CpuFreqPolicy, percent: u8) -> Option<u32> {
    let max = policy.hardware_max_khz?;
    let min = policy.hardware_min_khz.unwrap_or(0);
    let target = (u64::from(max) * u64::from(percent.clamp(1, 100)) / 100) as u32;
    let target = target.max(min);
    let step = policy
        .available_khz
        .iter()
        .copied()
        .filter(|khz| *khz <= target)
        .max()
        .or_else(|| policy.available_khz.iter().copied().min());
    Some(step.unwrap_or(target))
}

/// What the gateway asks the cpufreq helper for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub profile: Profile,
    /// `power.cpu_throttle_percent`, 1–100.
    pub percent: u8,
}

impl Request {
    /// Reads `"<profile> <percent>"`, the whole text of a request file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let [profile, percent] = words[..] else {
            return Err(format!(
                "expected \"<profile> <percent>\", got {:?}",
                text.trim()
            ));
        };
        let profile = Profile::ALL
            .into_iter()
            .find(|p| p.name() == profile)
            .ok_or_else(|| format!("unknown profile {profile:?}"))?;
        let percent = percent
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=100).contains(p))
            .ok_or_else(|| format!("the percentage must be 1 to 100, got {percent:?}"))?;
        Ok(Self { profile, percent })
    }
}

/// Replaces the request file at once (a new file renamed over the old), so the helper never
/// reads half of one. The file is world-readable whatever the umask: the helper is root
/// without capabilities, so it reads another user's file only through its mode bits.
pub fn write_request(path: &std::path::Path, request: &Request) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let partial = path.with_extension("partial");
    std::fs::write(
        &partial,
        format!("{} {}\n", request.profile.name(), request.percent),
    )?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&partial, path)
}

/// `mcp-gateway cpufreq apply REQUEST`: the helper's side. Reads the request, plans the writes
/// for every policy under `root`, makes them, and says what it did; exit 1 when a write was
/// refused, 2 when the request is unreadable.
pub fn apply_command(request: &std::path::Path, root: &SystemRoot) -> std::process::ExitCode {
    use std::process::ExitCode;
    let parsed = std::fs::read_to_string(request)
        .map_err(|e| e.to_string())
        .and_then(|text| Request::parse(&text));
    let request = match parsed {
        Ok(request) => request,
        Err(e) => {
            eprintln!("cpufreq apply: {}: {e}", request.display());
            return ExitCode::from(2);
        }
    };
    let policies = crate::device::cpufreq_policies(root);
    let writes = plan(request.profile, &policies, request.percent);
    let failed = apply(root, &writes);
    #[allow(clippy::print_stdout)] // The command's report, read in the journal.
    {
        println!(
            "{} at {} %: {} cpufreq policies, {} writes",
            request.profile.name(),
            request.percent,
            policies.len(),
            writes.len()
        );
        for write in writes.iter().filter(|w| !failed.iter().any(|f| &f.0 == *w)) {
            println!("{} = {}", write.path, write.value);
        }
    }
    for (write, error) in &failed {
        eprintln!("cpufreq apply: {} = {}: {error}", write.path, write.value);
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Makes the writes; each failure comes back with its path (`EACCES` without the privilege to
/// write cpufreq).
pub fn apply(root: &SystemRoot, writes: &[SysfsWrite]) -> Vec<(SysfsWrite, std::io::Error)> {
    writes
        .iter()
        .filter_map(|w| {
            std::fs::write(root.path(&w.path), &w.value)
                .err()
                .map(|e| (w.clone(), e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::device::cpufreq_policies;

    /// A writable copy of a fixture tree.
    fn copy_of(fixture: &str) -> (tempfile::TempDir, SystemRoot) {
        fn copy(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).expect("mkdir");
            for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
                let target = to.join(entry.file_name());
                if entry.path().is_dir() {
                    copy(&entry.path(), &target);
                } else {
                    std::fs::copy(entry.path(), target).expect("copy");
                }
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(fixture);
        copy(&source, dir.path());
        let root = SystemRoot::new(dir.path());
        (dir, root)
    }

    fn write(path: &str, value: &str) -> SysfsWrite {
        SysfsWrite {
            path: path.into(),
            value: value.into(),
        }
    }

    #[test]
    fn a_pi_in_each_profile() {
        let (_dir, root) = copy_of("sysroot-rpi4");
        let policy = "/sys/devices/system/cpu/cpufreq/policy0";
        let writes = |profile, throttle| plan(profile, &cpufreq_policies(&root), throttle);

        // ondemand at 1.8 GHz now: performance changes only the governor.
        assert_eq!(
            writes(Profile::Performance, 100),
            [write(&format!("{policy}/scaling_governor"), "performance")]
        );
        // 75 % of 1.8 GHz is 1.35 GHz: the step below is 1.3 GHz.
        assert_eq!(
            writes(Profile::Balanced, 75),
            [
                write(&format!("{policy}/scaling_governor"), "schedutil"),
                write(&format!("{policy}/scaling_max_freq"), "1300000"),
            ]
        );
        // Low-power caps at half (900 MHz) even when the throttle allows more.
        let low = writes(Profile::LowPower, 100);
        assert_eq!(
            low,
            [
                write(&format!("{policy}/scaling_governor"), "conservative"),
                write(&format!("{policy}/scaling_max_freq"), "900000"),
            ]
        );
        assert!(apply(&root, &low).is_empty());
        let now = &cpufreq_policies(&root)[0];
        assert_eq!(now.governor.as_deref(), Some("conservative"));
        assert_eq!(now.max_khz, Some(900_000));
        assert!(
            writes(Profile::LowPower, 100).is_empty(),
            "nothing left to change"
        );
        // A throttle below the lowest step stays on the lowest step.
        assert_eq!(
            writes(Profile::LowPower, 10),
            [write(&format!("{policy}/scaling_max_freq"), "600000")]
        );
    }

    #[test]
    fn intel_pstate_has_two_governors_and_no_steps() {
        let (_dir, root) = copy_of("sysroot-laptop");
        let policies = cpufreq_policies(&root);
        let performance = plan(Profile::Performance, &policies, 100);
        assert_eq!(
            performance.len(),
            4,
            "one governor write per policy: {performance:?}"
        );
        assert!(performance.iter().all(|w| w.value == "performance"));
        let low = plan(Profile::LowPower, &policies, 80);
        assert_eq!(
            low.len(),
            4,
            "powersave is current; only the ceiling changes: {low:?}"
        );
        assert!(low
            .iter()
            .all(|w| w.path.ends_with("scaling_max_freq") && w.value == "2350000"));
    }

    #[test]
    fn a_request_names_a_profile_and_a_percentage_only() {
        let request = Request::parse("low-power 80\n").expect("valid");
        assert_eq!(
            request,
            Request {
                profile: Profile::LowPower,
                percent: 80
            }
        );
        for bad in [
            "",
            "turbo 80",
            "low-power 0",
            "low-power 101",
            "low-power",
            "low-power 80 /etc/passwd",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cpufreq-request");
        write_request(&file, &request).expect("write");
        let text = std::fs::read_to_string(&file).expect("read");
        assert_eq!(Request::parse(&text).expect("round trip"), request);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "the helper must be able to read it");
    }

    #[test]
    fn a_write_that_is_refused_is_reported_with_its_path() {
        let root = SystemRoot::new("/nonexistent-root");
        let failed = apply(
            &root,
            &[write(
                "/sys/devices/system/cpu/cpufreq/policy0/scaling_governor",
                "performance",
            )],
        );
        assert_eq!(failed.len(), 1);
        assert!(failed[0].0.path.ends_with("scaling_governor"));
    }
}
