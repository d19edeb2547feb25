//! The governor at work: every `power.poll_interval_seconds` (and at once after a request ends
//! an idle spell, or the profile is set through the API) it reads the power supplies, thermal
//! zones and CPU load, chooses a profile, and on a switch logs the reason and applies it: cpufreq,
//! whether the local model may run, and how often background work (telemetry export, the
//! offline queue's retries) wakes.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::cpufreq;
use super::profile::{AutoProfile, Decision, Profile, Readings, Thresholds};
use crate::config::{CpufreqControl, PowerConfig, PowerProfile};
use crate::device::{
    self, CpuFreqPolicy, CpuTimes, LoadAverage, PowerSupply, SystemRoot, ThermalZone,
};
use crate::telemetry::Metrics;

/// How much longer background intervals are in low-power.
pub const LOW_POWER_INTERVAL_FACTOR: u32 = 4;

/// What background loops read to space their wake-ups: 1 normally, more in low-power.
#[derive(Debug)]
pub struct Pace(AtomicU32);

impl Default for Pace {
    fn default() -> Self {
        Self(AtomicU32::new(1))
    }
}

impl Pace {
    /// `interval` stretched by the current factor.
    pub fn stretch(&self, interval: Duration) -> Duration {
        interval.saturating_mul(self.0.load(Ordering::Relaxed).max(1))
    }

    pub fn factor(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The governor's answer to `GET /v1/power`.
#[derive(Debug, Clone, Serialize)]
pub struct PowerStatus {
    /// `auto` or the fixed profile (from `power.profile` or `PUT /v1/power`).
    pub setting: PowerProfile,
    pub profile: Profile,
    pub reason: String,
    pub local_inference: bool,
    /// Seconds since the Unix epoch of the last switch.
    pub since_unix: u64,
    /// No request for `power.sleep_on_idle_ms`.
    pub idle: bool,
    pub on_external_power: Option<bool>,
    pub battery_percent: Option<u8>,
    pub thermal_headroom_celsius: Option<f64>,
    pub supplies: Vec<PowerSupply>,
    pub thermal_zones: Vec<ThermalZone>,
    pub cpufreq: CpufreqStatus,
    pub cpu: CpuLoad,
    /// The local model's kernel threads (fixed at start).
    pub model_threads: usize,
    /// Background intervals are multiplied by this.
    pub background_interval_factor: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct CpufreqStatus {
    pub control: CpufreqControl,
    pub policies: Vec<CpuFreqPolicy>,
    /// Why the last switch could not be applied, if it could not.
    pub error: Option<String>,
}

/// How busy the CPUs are. Reported, not used to choose the profile: what keeps the gateway
/// out of low-power is its own requests (`power.sleep_on_idle_ms`), not other programs' load.
#[derive(Debug, Clone, Serialize)]
pub struct CpuLoad {
    /// From `/proc/loadavg`.
    pub load_average: Option<LoadAverage>,
    /// Percent of CPU time busy between the last two governor steps (since boot at the
    /// first), from `/proc/stat`.
    pub busy_percent: Option<f64>,
}

/// A profile setting refused by [`Governor::set`].
#[derive(Debug, thiserror::Error)]
#[error("unknown power profile {0:?}; use auto, performance, balanced or low-power")]
pub struct UnknownProfile(pub String);

#[derive(Debug)]
struct State {
    setting: PowerProfile,
    auto: AutoProfile,
    current: Option<Decision>,
    since_unix: u64,
    idle: bool,
    cpufreq_error: Option<String>,
    /// `/proc/stat` at the last step, and how busy the CPUs were since the one before.
    cpu_times: Option<CpuTimes>,
    cpu_busy_percent: Option<f64>,
}

/// The power governor of one gateway.
#[derive(Debug)]
pub struct Governor {
    root: SystemRoot,
    config: PowerConfig,
    state: Mutex<State>,
    started: Instant,
    /// Milliseconds after `started` of the last request.
    last_request_ms: AtomicU64,
    idle: AtomicBool,
    wake: Notify,
    idle_exit: Notify,
    pace: Arc<Pace>,
    local_inference: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl Governor {
    pub fn new(config: &PowerConfig, root: SystemRoot, metrics: Arc<Metrics>) -> Self {
        Self {
            root,
            config: config.clone(),
            state: Mutex::new(State {
                setting: config.profile,
                auto: AutoProfile::new(Thresholds::from_config(config)),
                current: None,
                since_unix: 0,
                idle: false,
                cpufreq_error: None,
                cpu_times: None,
                cpu_busy_percent: None,
            }),
            started: Instant::now(),
            last_request_ms: AtomicU64::new(0),
            idle: AtomicBool::new(false),
            wake: Notify::new(),
            idle_exit: Notify::new(),
            pace: Arc::default(),
            local_inference: Arc::new(AtomicBool::new(true)),
            metrics,
        }
    }

    /// The pace background loops follow.
    pub fn pace(&self) -> Arc<Pace> {
        Arc::clone(&self.pace)
    }

    /// Whether the local model may run now (false on a critical battery).
    pub fn local_inference(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.local_inference)
    }

    pub fn allows_local_inference(&self) -> bool {
        self.local_inference.load(Ordering::Relaxed)
    }

    /// Records a request; one that ends an idle spell wakes the governor to leave low-power.
    pub fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_request_ms.store(now, Ordering::Relaxed);
        if self.idle.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    /// Sets the profile (`auto` or a fixed one) until the next restart, and applies it now.
    pub fn set(&self, setting: &str) -> Result<PowerStatus, UnknownProfile> {
        let setting = match setting {
            "auto" => PowerProfile::Auto,
            "performance" => PowerProfile::Performance,
            "balanced" => PowerProfile::Balanced,
            "low-power" => PowerProfile::LowPower,
            other => return Err(UnknownProfile(other.to_owned())),
        };
        self.lock().setting = setting;
        info!(?setting, "power profile set through the API");
        Ok(self.step())
    }

    /// Reads, decides, and applies what changed; returns the status.
    pub fn step(&self) -> PowerStatus {
        let (supplies, zones) = self.read_sensors();
        let cpu_times = device::cpu_times(&self.root);
        let readings = Readings::of(&supplies, &zones);
        let idle_for = self.idle_for();
        let idle = self.config.sleep_on_idle_ms > 0
            && idle_for >= Duration::from_millis(self.config.sleep_on_idle_ms);
        let mut state = self.lock();
        let mut decision = match state.setting {
            PowerProfile::Auto => state.auto.decide(&readings).0,
            fixed => Decision {
                profile: Profile::from_setting(fixed).unwrap_or(Profile::Balanced),
                local_inference: true,
                reason: "the profile is set, not chosen automatically".to_owned(),
            },
        };
        if idle && decision.profile != Profile::LowPower {
            decision.reason = format!(
                "no request for {} s (power.sleep_on_idle_ms); otherwise {}: {}",
                idle_for.as_secs(),
                decision.profile.name(),
                decision.reason
            );
            decision.profile = Profile::LowPower;
        }
        let switched = state.current.as_ref().is_none_or(|c| {
            c.profile != decision.profile || c.local_inference != decision.local_inference
        });
        state.idle = idle;
        self.idle.store(idle, Ordering::Relaxed);
        state.cpu_busy_percent =
            cpu_times.and_then(|now| now.busy_percent_since(&state.cpu_times.unwrap_or_default()));
        state.cpu_times = cpu_times;
        if switched {
            info!(
                profile = decision.profile.name(),
                local_inference = decision.local_inference,
                "power profile {}: {}",
                decision.profile.name(),
                decision.reason
            );
            state.cpufreq_error = self.apply_cpufreq(decision.profile);
            let factor = match decision.profile {
                Profile::LowPower => LOW_POWER_INTERVAL_FACTOR,
                Profile::Performance | Profile::Balanced => 1,
            };
            self.pace.0.store(factor, Ordering::Relaxed);
            self.local_inference
                .store(decision.local_inference, Ordering::Relaxed);
            self.metrics.power_switched(decision.profile.name());
            state.since_unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
        }
        // A reason's figures (battery level, headroom) move without a switch.
        state.current = Some(decision);
        let status = self.status_of(&state, supplies, zones);
        drop(state);
        self.metrics.power_readings(&status);
        status
    }

    /// The status as of the last step, with fresh readings.
    pub fn status(&self) -> PowerStatus {
        let (supplies, zones) = self.read_sensors();
        let state = self.lock();
        self.status_of(&state, supplies, zones)
    }

    fn read_sensors(&self) -> (Vec<PowerSupply>, Vec<ThermalZone>) {
        (
            device::power_supplies(&self.root),
            device::thermal_zones(&self.root),
        )
    }

    /// Runs until `stop`: a step now, then one per poll interval, or sooner when idleness
    /// begins or ends. With `exit_on_idle`, [`Governor::idle_exit`] fires once idle.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let poll = Duration::from_secs(u64::from(self.config.poll_interval_seconds));
        loop {
            self.step();
            if self.config.exit_on_idle && self.idle.load(Ordering::Relaxed) {
                self.idle_exit.notify_one();
            }
            // Awake at the moment idleness begins, so low-power starts on time.
            let wait = match self.config.sleep_on_idle_ms {
                0 => poll,
                _ if self.idle.load(Ordering::Relaxed) => poll,
                ms => {
                    let until_idle = Duration::from_millis(ms).saturating_sub(self.idle_for());
                    poll.min(until_idle + Duration::from_millis(1))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Resolves when the gateway has been idle for `sleep_on_idle_ms` and `exit_on_idle` is on.
    pub async fn idle_exit(&self) {
        self.idle_exit.notified().await;
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_request_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is replaced field by field under the lock; a panic cannot leave it torn
        // in a way that matters more than one poll interval.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts cpufreq in `profile` as `power.cpufreq` says; `Some(reason)` when it could not.
    fn apply_cpufreq(&self, profile: Profile) -> Option<String> {
        let percent = self.config.cpu_throttle_percent;
        let error = match self.config.cpufreq {
            CpufreqControl::Off => None,
            CpufreqControl::Direct => {
                let writes = cpufreq::plan(profile, &device::cpufreq_policies(&self.root), percent);
                let failed = cpufreq::apply(&self.root, &writes);
                (!failed.is_empty()).then(|| {
                    let first = &failed[0];
                    format!(
                        "{} of {} cpufreq writes refused, first {} = {}: {} (run as root, or set power.cpufreq = \"helper\" with mcp-gateway-cpufreq.path)",
                        failed.len(),
                        writes.len(),
                        first.0.path,
                        first.0.value,
                        first.1
                    )
                })
            }
            CpufreqControl::Helper => {
                let request = cpufreq::Request { profile, percent };
                cpufreq::write_request(&self.config.cpufreq_request, &request)
                    .err()
                    .map(|e| {
                        format!(
                            "cannot write {}: {e} (power.cpufreq_request)",
                            self.config.cpufreq_request.display()
                        )
                    })
            }
        };
        if let Some(error) = &error {
            warn!(
                "power profile {} not applied to cpufreq: {error}",
                profile.name()
            );
        }
        error
    }

    fn status_of(
        &self,
        state: &State,
        supplies: Vec<PowerSupply>,
        thermal_zones: Vec<ThermalZone>,
    ) -> PowerStatus {
        let readings = Readings::of(&supplies, &thermal_zones);
        let (profile, reason, local_inference) = match &state.current {
            Some(d) => (d.profile, d.reason.clone(), d.local_inference),
            None => (Profile::Balanced, "not decided yet".to_owned(), true),
        };
        PowerStatus {
            setting: state.setting,
            profile,
            reason,
            local_inference,
            since_unix: state.since_unix,
            idle: state.idle,
            on_external_power: readings.on_external_power,
            battery_percent: readings.battery_percent,
            thermal_headroom_celsius: readings.thermal_headroom_celsius,
            supplies,
            thermal_zones,
            cpufreq: CpufreqStatus {
                control: self.config.cpufreq,
                policies: device::cpufreq_policies(&self.root),
                error: state.cpufreq_error.clone(),
            },
            cpu: CpuLoad {
                load_average: device::load_average(&self.root),
                busy_percent: state.cpu_busy_percent,
            },
            model_threads: crate::inference::threads(),
            background_interval_factor: self.pace.factor(),
        }
    }
}

/// The local model's thread count to set at start (candle sizes its pools once): what
/// `models.threads` says, else half the CPUs when the gateway starts in low-power, else 0
/// (candle's default, one per core).
pub fn threads_at_start(config: &crate::config::Config) -> u32 {
    if config.models.threads > 0 {
        return config.models.threads;
    }
    let profile = Profile::from_setting(config.power.profile).unwrap_or_else(|| {
        let readings = Readings::read(&SystemRoot::new(&config.device.system_root));
        let mut auto = AutoProfile::new(Thresholds::from_config(&config.power));
        auto.decide(&readings).0.profile
    });
    match profile {
        Profile::LowPower => {
            let cpus = std::thread::available_parallelism().map_or(1, usize::from) as u32;
            (cpus / 2).max(1)
        }
        Profile::Performance | Profile::Balanced => 0,
    }
}
