//! The metrics registry behind `GET /metrics`, in the OpenMetrics text format that Prometheus
//! scrapes natively.

pub mod export;

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the request latency buckets, in seconds: 0.5 ms to 30 s.
const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CompletionLabels {
    backend: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    backend: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProfileLabels {
    profile: &'static str,
}

/// A sysfs name: a cpufreq policy, a thermal zone's type, a power supply. The device decides
/// how many there are, not a client.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceLabels {
    name: String,
}

/// An upstream's configured name: the operator decides how many there are, not a client.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

fn upstream_labels(name: &str) -> UpstreamLabels {
    UpstreamLabels {
        upstream: name.to_owned(),
    }
}

/// A memory budget's name (`model`, `http_buffers`, `telemetry_buffer`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    budget: &'static str,
}

/// The memory budgets.
#[derive(Debug, Default)]
struct MemoryMetrics {
    limit: Family<BudgetLabels, Gauge>,
    used: Family<BudgetLabels, Gauge>,
    refused: Family<BudgetLabels, Counter>,
}

impl MemoryMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "memory_limit_bytes",
            "Budget of a subsystem's memory",
            self.limit.clone(),
        );
        registry.register(
            "memory_used_bytes",
            "Memory a subsystem holds now against its budget",
            self.used.clone(),
        );
        registry.register(
            "memory_refused",
            "Takes refused for want of budget: HTTP requests and responses, telemetry snapshots",
            self.refused.clone(),
        );
    }
}

/// A sensor stream's configured name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Sensor stream analytics.
#[derive(Debug, Default)]
struct SensorMetrics {
    value: Family<StreamLabels, Gauge<f64, AtomicU64>>,
    score: Family<StreamLabels, Gauge<f64, AtomicU64>>,
    anomalies: Family<StreamLabels, Counter>,
    alerts: Family<OutcomeLabels, Counter>,
}

impl SensorMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "sensor_value",
            "Last reading of a sensor stream, in its unit",
            self.value.clone(),
        );
        registry.register(
            "sensor_score",
            "Robust z-score of a sensor stream's last reading (absent while warming up)",
            self.score.clone(),
        );
        registry.register(
            "sensor_anomalies",
            "Readings of a sensor stream beyond its threshold",
            self.anomalies.clone(),
        );
        registry.register(
            "sensor_alerts",
            "Anomaly alerts by outcome: sent, queued (offline), refused by the receiver, lost",
            self.alerts.clone(),
        );
    }
}

/// The power governor's gauges.
#[derive(Debug, Default)]
struct PowerMetrics {
    profile: Family<ProfileLabels, Gauge>,
    switches: Family<ProfileLabels, Counter>,
    local_inference: Gauge,
    frequency: Family<DeviceLabels, Gauge>,
    temperature: Family<DeviceLabels, Gauge<f64, AtomicU64>>,
    battery: Family<DeviceLabels, Gauge>,
    supply_online: Family<DeviceLabels, Gauge>,
    cpu_busy: Gauge<f64, AtomicU64>,
}

impl PowerMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "power_profile",
            "1 for the power profile in force, 0 for the others",
            self.profile.clone(),
        );
        registry.register(
            "power_profile_switches",
            "Switches of the power profile, by the profile switched to",
            self.switches.clone(),
        );
        registry.register(
            "power_local_inference",
            "1 while the power governor lets the local model run",
            self.local_inference.clone(),
        );
        registry.register(
            "cpu_frequency_khz",
            "Current frequency of each cpufreq policy",
            self.frequency.clone(),
        );
        registry.register(
            "thermal_zone_celsius",
            "Temperature of each thermal zone (thermal_zoneN)",
            self.temperature.clone(),
        );
        registry.register(
            "battery_capacity_percent",
            "Charge of each battery",
            self.battery.clone(),
        );
        registry.register(
            "power_supply_online",
            "1 while a mains or USB supply delivers power",
            self.supply_online.clone(),
        );
        registry.register(
            "cpu_busy_percent",
            "Percent of CPU time busy between the power governor's last two readings",
            self.cpu_busy.clone(),
        );
    }
}

/// Every metric the gateway keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    connections_open: Gauge,
    connections: Counter,
    reloads: Family<ResultLabels, Counter>,
    completions: Family<CompletionLabels, Counter>,
    completion_tokens: Family<TokenLabels, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    queue_enqueued: Counter,
    queue_rejected: Family<ReasonLabels, Counter>,
    queue_dropped: Counter,
    queue_delivered: Counter,
    queue_failed: Counter,
    queue_sync_rounds: Family<ResultLabels, Counter>,
    queue_depth: Gauge,
    upstream_up: Family<UpstreamLabels, Gauge>,
    upstream_disconnects: Family<UpstreamLabels, Counter>,
    power: PowerMetrics,
    sensors: SensorMetrics,
    memory: MemoryMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mcp_edge");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request head to response head",
            latency.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "http_connections_open",
            "Client connections open now",
            connections_open.clone(),
        );
        let connections = Counter::default();
        registry.register(
            "http_connections",
            "Client connections accepted",
            connections.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP)",
            reloads.clone(),
        );
        let completions = Family::<CompletionLabels, Counter>::default();
        registry.register(
            "completions",
            "Completions answered, by the backend of the last turn and how they ended",
            completions.clone(),
        );
        let completion_tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "completion_tokens",
            "Prompt and completion tokens of answered completions",
            completion_tokens.clone(),
        );
        let fallbacks = Family::<FallbackLabels, Counter>::default();
        registry.register(
            "completion_fallbacks",
            "Turns handed to the other backend after the first choice failed or was too slow",
            fallbacks.clone(),
        );
        let queue_enqueued = Counter::default();
        registry.register(
            "queue_enqueued",
            "Entries stored durably in the offline queue",
            queue_enqueued.clone(),
        );
        let queue_rejected = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "queue_rejected",
            "Entries the offline queue refused (full, disk_full, error)",
            queue_rejected.clone(),
        );
        let queue_dropped = Counter::default();
        registry.register(
            "queue_dropped",
            "Waiting entries dropped to make room (offline.overflow = drop_oldest)",
            queue_dropped.clone(),
        );
        let queue_delivered = Counter::default();
        registry.register(
            "queue_delivered",
            "Queued entries delivered by sync",
            queue_delivered.clone(),
        );
        let queue_failed = Counter::default();
        registry.register(
            "queue_failed",
            "Queued entries their upstream refused for good",
            queue_failed.clone(),
        );
        let queue_sync_rounds = Family::<ResultLabels, Counter>::default();
        registry.register(
            "queue_sync_rounds",
            "Sync rounds, by whether they emptied what they set out to deliver",
            queue_sync_rounds.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Entries waiting in the offline queue",
            queue_depth.clone(),
        );
        let upstream_up = Family::<UpstreamLabels, Gauge>::default();
        registry.register(
            "upstream_up",
            "1 while the upstream is connected and answering, else 0",
            upstream_up.clone(),
        );
        let upstream_disconnects = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_disconnects",
            "Connections to an upstream given up: closed, or a liveness ping unanswered",
            upstream_disconnects.clone(),
        );
        let power = PowerMetrics::default();
        power.register(&mut registry);
        let sensors = SensorMetrics::default();
        sensors.register(&mut registry);
        let memory = MemoryMetrics::default();
        memory.register(&mut registry);
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: crate::version(),
            })
            .set(1);
        registry.register("build_info", "Version of the running gateway", build_info);
        Self {
            registry,
            requests,
            latency,
            connections_open,
            connections,
            reloads,
            completions,
            completion_tokens,
            fallbacks,
            queue_enqueued,
            queue_rejected,
            queue_dropped,
            queue_delivered,
            queue_failed,
            queue_sync_rounds,
            queue_depth,
            upstream_up,
            upstream_disconnects,
            power,
            sensors,
            memory,
        }
    }

    /// The gauges and counter of memory budget `budget` (`limit`, `used`, `refused`), each
    /// listed from now on; the budget updates them itself (atomic stores, no lookup).
    pub fn memory_budget(&self, budget: &'static str) -> (Gauge, Gauge, Counter) {
        let labels = BudgetLabels { budget };
        (
            self.memory.limit.get_or_create(&labels).clone(),
            self.memory.used.get_or_create(&labels).clone(),
            self.memory.refused.get_or_create(&labels).clone(),
        )
    }

    /// A sensor stream's reading and its score (`None` while warming up).
    pub fn sensor_sample(&self, stream: &str, value: f64, score: Option<f64>) {
        let labels = StreamLabels {
            stream: stream.to_owned(),
        };
        self.sensors.value.get_or_create(&labels).set(value);
        if let Some(score) = score {
            self.sensors.score.get_or_create(&labels).set(score);
        }
        // Listed at 0 from the first sample, so that a rate over it has a first sample.
        let _ = self.sensors.anomalies.get_or_create(&labels);
    }

    /// Counts an anomaly of a sensor stream.
    pub fn sensor_anomaly(&self, stream: &str) {
        self.sensors
            .anomalies
            .get_or_create(&StreamLabels {
                stream: stream.to_owned(),
            })
            .inc();
    }

    /// Counts an anomaly alert: `sent`, `queued`, `refused` or `lost`.
    pub fn alert(&self, outcome: &'static str) {
        self.sensors
            .alerts
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Whether upstream `name` is connected and answering.
    pub fn upstream_up(&self, name: &str, up: bool) {
        self.upstream_up
            .get_or_create(&upstream_labels(name))
            .set(i64::from(up));
        // Listed at 0 from the start, so that a rate over it has a first sample.
        let _ = self
            .upstream_disconnects
            .get_or_create(&upstream_labels(name));
    }

    /// Counts a connection to upstream `name` given up.
    pub fn upstream_lost(&self, name: &str) {
        self.upstream_disconnects
            .get_or_create(&upstream_labels(name))
            .inc();
    }

    /// Counts a switch of the power profile to `profile`.
    pub fn power_switched(&self, profile: &'static str) {
        self.power
            .switches
            .get_or_create(&ProfileLabels { profile })
            .inc();
    }

    /// Sets the power gauges from the governor's status.
    pub fn power_readings(&self, status: &crate::power::PowerStatus) {
        let p = &self.power;
        for profile in crate::power::Profile::ALL {
            let on = i64::from(profile == status.profile);
            p.profile
                .get_or_create(&ProfileLabels {
                    profile: profile.name(),
                })
                .set(on);
        }
        p.local_inference.set(i64::from(status.local_inference));
        if let Some(busy) = status.cpu.busy_percent {
            p.cpu_busy.set(busy);
        }
        let name = |name: &str| DeviceLabels {
            name: name.to_owned(),
        };
        for policy in &status.cpufreq.policies {
            if let Some(khz) = policy.current_khz {
                p.frequency
                    .get_or_create(&name(&policy.policy))
                    .set(i64::from(khz));
            }
        }
        for zone in &status.thermal_zones {
            if let Some(celsius) = zone.celsius {
                p.temperature.get_or_create(&name(&zone.zone)).set(celsius);
            }
        }
        for supply in &status.supplies {
            if let Some(percent) = supply.capacity_percent {
                p.battery
                    .get_or_create(&name(&supply.name))
                    .set(i64::from(percent));
            }
            if let Some(online) = supply.online {
                p.supply_online
                    .get_or_create(&name(&supply.name))
                    .set(i64::from(online));
            }
        }
    }

    /// Counts an entry stored in the offline queue and the `dropped` ones that made room.
    pub fn queue_enqueued(&self, dropped: u64) {
        self.queue_enqueued.inc();
        self.queue_dropped.inc_by(dropped);
    }

    /// Counts an entry the queue refused: `full`, `disk_full` or `error`.
    pub fn queue_rejected(&self, reason: &'static str) {
        self.queue_rejected
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn queue_depth(&self, queued: u64) {
        self.queue_depth.set(queued as i64);
    }

    /// Counts a sync round; `completed` is false when it stopped on an undeliverable entry.
    pub fn queue_synced(&self, delivered: u64, failed: u64, completed: bool) {
        self.queue_delivered.inc_by(delivered);
        self.queue_failed.inc_by(failed);
        let result = if completed {
            "completed"
        } else {
            "interrupted"
        };
        self.queue_sync_rounds
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Counts one completion: `backend` is `local`, `cloud` or `none`; `outcome` is a finish
    /// reason (`stop`, `length`, `tool_calls`) or `error`.
    pub fn completion(&self, backend: &'static str, outcome: &'static str, tokens: (u64, u64)) {
        self.completions
            .get_or_create(&CompletionLabels { backend, outcome })
            .inc();
        for (kind, n) in [("prompt", tokens.0), ("completion", tokens.1)] {
            self.completion_tokens
                .get_or_create(&TokenLabels { backend, kind })
                .inc_by(n);
        }
    }

    /// Counts a turn handed over to `to` (`local` or `cloud`).
    pub fn completion_fallback(&self, to: &'static str) {
        self.fallbacks.get_or_create(&FallbackLabels { to }).inc();
    }

    /// Counts one answered request. `route` and `method` come from fixed sets, so a client cannot
    /// grow the label space.
    pub fn observe_request(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        let labels = RequestLabels {
            route,
            method,
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }

    pub fn connection_opened(&self) {
        self.connections.inc();
        self.connections_open.inc();
    }

    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    pub fn reload(&self, ok: bool) {
        let result = if ok { "applied" } else { "rejected" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
