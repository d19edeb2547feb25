//! Model, kernel, uptime, load, CPU time, memory and disk.

use serde::Serialize;

use super::SystemRoot;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemInfo {
    pub hostname: Option<String>,
    /// Board or machine model: device tree `model` (Raspberry Pi, Jetson), else DMI.
    pub model: Option<String>,
    pub os: Option<String>,
    pub kernel: Option<String>,
    pub architecture: &'static str,
    pub cpus: usize,
    pub uptime_seconds: Option<f64>,
    pub load: Option<LoadAverage>,
    pub memory: Option<Memory>,
    pub disk: Option<DiskUsage>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadAverage {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Memory {
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
}

/// Space on the file system that holds `path`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskUsage {
    pub path: String,
    pub total_bytes: u64,
    pub available_bytes: u64,
}

/// Reads everything; `disk_path` is the directory whose file system is reported (the state
/// directory on a device).
pub fn system_info(root: &SystemRoot, disk_path: &std::path::Path) -> SystemInfo {
    SystemInfo {
        hostname: root.read("/proc/sys/kernel/hostname"),
        model: model(root),
        os: os_release(root),
        kernel: root.read("/proc/sys/kernel/osrelease"),
        architecture: std::env::consts::ARCH,
        cpus: cpu_count(root),
        uptime_seconds: root
            .read("/proc/uptime")
            .and_then(|u| u.split_whitespace().next()?.parse().ok()),
        load: load_average(root),
        memory: memory(root),
        disk: disk(disk_path),
    }
}

fn model(root: &SystemRoot) -> Option<String> {
    [
        "/proc/device-tree/model",
        "/sys/firmware/devicetree/base/model",
        "/sys/class/dmi/id/product_name",
    ]
    .into_iter()
    .find_map(|p| root.read(p).filter(|m| !m.is_empty()))
}

fn os_release(root: &SystemRoot) -> Option<String> {
    let text = root
        .read("/etc/os-release")
        .or_else(|| root.read("/usr/lib/os-release"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
}

fn cpu_count(root: &SystemRoot) -> usize {
    // `possible` ranges such as "0-3" or "0-1,4"; fall back to what the scheduler offers us.
    let from_sysfs = root.read("/sys/devices/system/cpu/online").map(|ranges| {
        ranges
            .split(',')
            .filter_map(|r| match r.split_once('-') {
                Some((a, b)) => Some(b.parse::<usize>().ok()? - a.parse::<usize>().ok()? + 1),
                None => r.parse::<usize>().ok().map(|_| 1),
            })
            .sum()
    });
    from_sysfs
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `/proc/loadavg`: runnable and waiting tasks averaged over 1, 5 and 15 minutes.
pub fn load_average(root: &SystemRoot) -> Option<LoadAverage> {
    let text = root.read("/proc/loadavg")?;
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    Some(LoadAverage {
        one: fields.next()?.ok()?,
        five: fields.next()?.ok()?,
        fifteen: fields.next()?.ok()?,
    })
}

/// Time all CPUs spent since boot, in clock ticks (the first line of `/proc/stat`); the
/// default, all zero, stands for boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// user, nice, system, irq, softirq and steal (guest time is inside user and nice).
    pub busy: u64,
    /// busy, idle and iowait.
    pub total: u64,
}

impl CpuTimes {
    /// Percent of the time between `earlier` and `self` the CPUs were busy; `None` when no
    /// time passed or the counters went back (a different tree).
    pub fn busy_percent_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total).filter(|t| *t > 0)?;
        let busy = self.busy.checked_sub(earlier.busy)?;
        Some(100.0 * busy as f64 / total as f64)
    }
}

/// `/proc/stat`'s `cpu` line.
pub fn cpu_times(root: &SystemRoot) -> Option<CpuTimes> {
    let text = root.read("/proc/stat")?;
    let fields: Vec<u64> = text
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    let (idle, iowait) = (*fields.get(3)?, field(4));
    let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
    Some(CpuTimes {
        busy,
        total: busy + idle + iowait,
    })
}

fn memory(root: &SystemRoot) -> Option<Memory> {
    let text = root.read("/proc/meminfo")?;
    let field = |name: &str| -> Option<u64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(':'))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some(Memory {
        total_bytes: field("MemTotal")?,
        available_bytes: field("MemAvailable").or_else(|| field("MemFree"))?,
        swap_total_bytes: field("SwapTotal").unwrap_or(0),
        swap_free_bytes: field("SwapFree").unwrap_or(0),
    })
}

fn disk(path: &std::path::Path) -> Option<DiskUsage> {
    // The state directory may not exist yet: report the nearest existing ancestor.
    let existing = path.ancestors().find(|p| p.exists())?;
    let stat = nix::sys::statvfs::statvfs(existing).ok()?;
    let block = stat.fragment_size() as u64;
    Some(DiskUsage {
        path: existing.display().to_string(),
        total_bytes: stat.blocks() as u64 * block,
        available_bytes: stat.blocks_available() as u64 * block,
    })
}
