//! `mcp-edge.toml`: the schema, its defaults, loading with `${VAR}` interpolation, and the
//! rules every value must satisfy.
//!
//! Loading happens in two passes over the same text. Serde checks the shape (unknown keys, wrong
//! types, `${VAR}` in strings) and the TOML parser attaches the position of the offending value;
//! then [`Config::validate`] checks ranges and cross-field rules, and the loader looks up the
//! position of the key each rule names. Either way the operator gets `file:line:column: key:
//! message`. The builder runs the same rules, so a `Config` is valid however it was made.

mod builder;
mod error;
mod interpolate;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use builder::ConfigBuilder;
pub use error::{ConfigError, Located};
pub use validate::Invalid;

use interpolate::{
    opt_path, opt_secret, opt_string, path, path_vec, secret_map, string, string_vec,
};

/// The whole gateway configuration. Every section is optional in the file; what is left out
/// takes the embedded default, which suits a laptop or a development board.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub gateway: GatewayConfig,
    pub models: ModelsConfig,
    pub offline: OfflineConfig,
    pub security: SecurityConfig,
    pub telemetry: TelemetryConfig,
    pub power: PowerConfig,
    pub device: DeviceConfig,
    pub update: UpdateConfig,
    pub analytics: AnalyticsConfig,
    pub memory: MemoryConfig,
    pub upstreams: Vec<UpstreamConfig>,
}

/// `[gateway]`: the HTTP listener and its limits.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// `host:port` to listen on when no socket is handed over by systemd.
    #[serde(deserialize_with = "interpolate::socket_addr")]
    pub bind_address: SocketAddr,
    /// Connections served at once; further connections wait in the kernel's accept queue.
    pub max_connections: u32,
    /// Longest time one request may take, and the drain deadline at shutdown.
    pub request_timeout_ms: u64,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: u64,
    /// Host names (without port) that `Host` and `Origin` headers may carry.
    #[serde(deserialize_with = "string_vec")]
    pub allowed_hosts: Vec<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            bind_address: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_connections: 64,
            request_timeout_ms: 30_000,
            max_body_bytes: 1024 * 1024,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        }
    }
}

/// `[models]`: the local model, the cloud endpoint it falls back to, and how requests are
/// routed between them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Name the local model is served under (default: the file name without `.gguf`).
    #[serde(deserialize_with = "opt_string")]
    pub local_model: Option<String>,
    /// GGUF file of the local model; unset runs without one.
    #[serde(deserialize_with = "opt_path")]
    pub model_path: Option<PathBuf>,
    /// `tokenizer.json` to use instead of the tokenizer in the GGUF file (default: one beside
    /// the model file, if present).
    #[serde(deserialize_with = "opt_path")]
    pub tokenizer_path: Option<PathBuf>,
    /// Memory the local model may use (weights, KV cache, working memory); a model that
    /// needs more is refused at start-up.
    pub max_memory_mb: u32,
    /// Tokens of prompt plus answer per request; sizes the KV cache.
    pub context_length: u32,
    /// Default and ceiling of `max_tokens` in a request.
    pub max_tokens: u32,
    /// Threads of the local model; 0 uses one per core.
    pub threads: u32,
    /// Converting weight formats that have no fast kernel (Q4_1, Q5_0, Q5_1) to Q8_0 at load.
    pub requantize: Requantize,
    /// Requests that may wait for the local model while it runs one; more get 429 (or go to
    /// the cloud).
    pub max_queued: u32,
    /// Which backend answers first.
    pub routing: Routing,
    /// The local model must produce its first token within this time, else the request goes
    /// to the cloud (when one is configured and available).
    pub fallback_threshold_ms: u64,
    /// Rounds of tool calls one completion may make through the MCP layer.
    pub max_tool_rounds: u32,
    /// OpenAI-compatible base URL (`http://` or `https://`), up to and including `/v1`.
    #[serde(deserialize_with = "opt_string")]
    pub cloud_endpoint: Option<String>,
    #[serde(deserialize_with = "opt_secret")]
    pub cloud_api_key: Option<Secret>,
    /// Model name sent to the cloud (default: the one the request names).
    #[serde(deserialize_with = "opt_string")]
    pub cloud_model: Option<String>,
    /// Longest wait for the cloud to accept a request, and for each piece of its answer.
    pub cloud_timeout_ms: u64,
    /// Retries of a cloud request that failed in a way that is safe to repeat.
    pub cloud_retries: u32,
    /// Failed cloud requests in a row that open the circuit breaker.
    pub circuit_breaker_failures: u32,
    /// How long the open circuit refuses cloud requests before one probe may go.
    pub circuit_breaker_cooldown_ms: u64,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            local_model: None,
            model_path: None,
            tokenizer_path: None,
            max_memory_mb: 512,
            context_length: 2048,
            max_tokens: 256,
            threads: 0,
            requantize: Requantize::Auto,
            max_queued: 4,
            routing: Routing::LocalFirst,
            fallback_threshold_ms: 2_000,
            max_tool_rounds: 4,
            cloud_endpoint: None,
            cloud_api_key: None,
            cloud_model: None,
            cloud_timeout_ms: 30_000,
            cloud_retries: 2,
            circuit_breaker_failures: 5,
            circuit_breaker_cooldown_ms: 30_000,
        }
    }
}

/// `models.requantize`: whether weights candle has no SIMD kernel for are converted to Q8_0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Requantize {
    /// Convert when the model runs on candle and the result fits `max_memory_mb`: about 3x
    /// faster decoding there for ~1.6x the weight memory. Files the gateway's own kernels run
    /// stay as stored.
    Auto,
    /// Always convert (refused at load when it does not fit).
    Q8_0,
    /// Run the weights as stored.
    None,
}

/// `models.routing`, from the portable core (the policy itself is there too).
pub use mcp_edge_core::routing::Routing;

/// `[offline]`: the durable request queue.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OfflineConfig {
    /// Most requests held while offline.
    pub queue_size: u32,
    /// SQLite file of the queue.
    #[serde(deserialize_with = "path")]
    pub persistence_path: PathBuf,
    /// What a full queue does with one more request.
    pub overflow: Overflow,
    /// Seconds between sync attempts while entries wait (the base of the backoff).
    pub sync_interval_seconds: u32,
    /// `batched` delivers `sync_batch_size` entries at once and records them in one
    /// transaction; `one_by_one` delivers strictly in order, one at a time.
    pub sync_strategy: SyncStrategyName,
    pub sync_batch_size: u32,
    /// Hours that delivered and failed entries (and their results) are kept for pickup.
    pub keep_results_hours: u32,
    /// Compression of stored payloads and results.
    pub compression: Compression,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        Self {
            queue_size: 10_000,
            persistence_path: default_state_dir().join("queue.sqlite"),
            overflow: Overflow::Reject,
            sync_interval_seconds: 30,
            sync_strategy: SyncStrategyName::Batched,
            sync_batch_size: 16,
            keep_results_hours: 24,
            compression: Compression::BEST_BUILT,
        }
    }
}

/// What to do when the offline queue holds `offline.queue_size` waiting entries and another
/// arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Refuse the new entry (HTTP 429).
    Reject,
    /// Drop the oldest waiting entry to make room (counted in metrics).
    DropOldest,
}

/// `offline.sync_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStrategyName {
    Batched,
    OneByOne,
}

/// `[security]`: TPM and TLS.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    pub use_tpm: bool,
    /// TCTI string: `device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, ...
    #[serde(deserialize_with = "string")]
    pub tpm_device: String,
    /// Refuse to start without a working TPM (otherwise: software mode with a warning).
    pub attestation_required: bool,
    /// The PCR the gateway measures its binary and configuration into (8–16 or 23).
    pub tpm_pcr: u8,
    /// The firmware's TCG2 event log, sent with each quote when the file exists.
    #[serde(deserialize_with = "path")]
    pub firmware_event_log: PathBuf,
    /// Where `{ sealed = "name" }` secrets are read from (`name.json`).
    #[serde(deserialize_with = "path")]
    pub sealed_dir: PathBuf,
    /// The gateway confines itself: privilege drop, no_new_privs, no capabilities, Landlock,
    /// seccomp (the `sandbox` module).
    pub sandbox: bool,
    /// Started as root, the user to become once the socket is bound.
    #[serde(deserialize_with = "string")]
    pub user: String,
    /// Extra paths the sandbox lets the gateway (and its stdio upstreams) read.
    #[serde(deserialize_with = "path_vec")]
    pub sandbox_read_paths: Vec<PathBuf>,
    /// Extra paths the sandbox lets the gateway (and its stdio upstreams) write.
    #[serde(deserialize_with = "path_vec")]
    pub sandbox_write_paths: Vec<PathBuf>,
    /// An OAuth 2.1 authorization server whose access tokens MCP clients may use.
    pub oauth: OAuthConfig,
    #[serde(deserialize_with = "opt_path")]
    pub tls_cert: Option<PathBuf>,
    #[serde(deserialize_with = "opt_path")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle that client certificates must chain to (turns on mTLS).
    #[serde(deserialize_with = "opt_path")]
    pub tls_client_ca: Option<PathBuf>,
    /// API clients and what they may use; when any is listed, every route but `/health`
    /// needs a bearer token.
    pub clients: Vec<ClientConfig>,
}

/// `[security.oauth]`: the authorization server behind this resource (RFC 9728).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthConfig {
    /// The issuer (`iss`) of the access tokens; empty turns OAuth off.
    #[serde(deserialize_with = "string")]
    pub authorization_server: String,
    /// Where its signing keys are published (JWKS).
    #[serde(deserialize_with = "string")]
    pub jwks_uri: String,
    /// This gateway's MCP endpoint as clients reach it; tokens must name it in `aud`.
    #[serde(deserialize_with = "string")]
    pub resource: String,
}

/// `[[security.clients]]`: one API client.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    #[serde(deserialize_with = "string")]
    pub name: String,
    /// SHA-256 of the client's bearer token, 64 hex digits (`mcp-gateway hash-token`); the
    /// token itself is not stored.
    #[serde(deserialize_with = "string")]
    pub token_sha256: String,
    /// Instead of `token_sha256`: the OAuth client this entry narrows and rate-limits, as its
    /// access tokens name it (`client_id`, else `azp`, else `sub`). Its scopes come from its
    /// tokens.
    #[serde(deserialize_with = "string")]
    pub oauth_client: String,
    /// What the client may use: `completions`, `mcp`, `queue`, `admin`, `metrics`, or `*`.
    #[serde(deserialize_with = "string_vec")]
    pub scopes: Vec<String>,
    /// Requests per minute; 0 for no limit.
    pub requests_per_minute: u32,
    /// MCP tools (as `tools/list` names them) this client sees and may call over `/mcp`; a
    /// trailing `*` matches a prefix (`fleet_*`). Empty: all of them.
    #[serde(deserialize_with = "string_vec")]
    pub tools: Vec<String>,
    /// MCP prompts (by name) this client sees, gets and completes; as `tools`.
    #[serde(deserialize_with = "string_vec")]
    pub prompts: Vec<String>,
    /// MCP resources (by URI, `device://*`) and resource templates (by URI template) this
    /// client sees, reads, subscribes to and completes; as `tools`.
    #[serde(deserialize_with = "string_vec")]
    pub resources: Vec<String>,
}

/// The scopes a client can be given.
pub const SCOPES: [&str; 8] = [
    "completions",
    "mcp",
    "queue",
    "admin",
    "metrics",
    "attestation",
    "power",
    "*",
];

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            use_tpm: false,
            tpm_device: "device:/dev/tpmrm0".into(),
            attestation_required: false,
            tpm_pcr: 23,
            firmware_event_log: "/sys/kernel/security/tpm0/binary_bios_measurements".into(),
            sealed_dir: "/etc/mcp/sealed".into(),
            sandbox: false,
            user: String::new(),
            sandbox_read_paths: Vec::new(),
            sandbox_write_paths: Vec::new(),
            oauth: OAuthConfig::default(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            clients: Vec::new(),
        }
    }
}

/// `[telemetry]`: metrics and their export.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Serve `/metrics`.
    pub enabled: bool,
    pub export_interval_seconds: u32,
    pub compression: Compression,
    /// Collectors that compressed batches are pushed to (`http://` or `https://`).
    #[serde(deserialize_with = "string_vec")]
    pub endpoints: Vec<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            export_interval_seconds: 60,
            compression: Compression::BEST_BUILT,
            endpoints: Vec::new(),
        }
    }
}

/// `[power]`: the power governor ([`crate::power`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PowerConfig {
    /// The profile to run in; `auto` chooses from AC, battery and thermal headroom.
    pub profile: PowerProfile,
    /// Ceiling on CPU frequency as a percentage of the maximum (low-power keeps at most half).
    pub cpu_throttle_percent: u8,
    /// Validated only: this build runs the local model on the CPU.
    pub gpu_enabled: bool,
    /// Without a request for this long the gateway runs in low-power and frees the local
    /// model's threads; 0 never.
    pub sleep_on_idle_ms: u64,
    /// Exit once idle for `sleep_on_idle_ms` when started by `mcp-gateway.socket` (systemd
    /// starts it again on the next connection); never while the offline queue holds requests.
    pub exit_on_idle: bool,
    /// How often power supplies and thermal zones are read.
    pub poll_interval_seconds: u32,
    /// `auto`: low-power on battery at or below this charge.
    pub battery_low_percent: u8,
    /// `auto`: no local inference on battery at or below this charge.
    pub battery_critical_percent: u8,
    /// `auto`: low-power closer than this to a thermal trip point.
    pub thermal_margin_celsius: u8,
    /// How cpufreq is set.
    pub cpufreq: CpufreqControl,
    /// With `cpufreq = "helper"`: the file the gateway writes its wish to, watched by
    /// `mcp-gateway-cpufreq.path`.
    #[serde(deserialize_with = "path")]
    pub cpufreq_request: PathBuf,
}

impl Default for PowerConfig {
    fn default() -> Self {
        Self {
            profile: PowerProfile::Auto,
            cpu_throttle_percent: 100,
            gpu_enabled: true,
            sleep_on_idle_ms: 0,
            exit_on_idle: false,
            poll_interval_seconds: 30,
            battery_low_percent: 30,
            battery_critical_percent: 10,
            thermal_margin_celsius: 15,
            cpufreq: CpufreqControl::Off,
            cpufreq_request: PathBuf::from("/run/mcp-edge/cpufreq-request"),
        }
    }
}

/// `power.profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PowerProfile {
    Auto,
    Performance,
    Balanced,
    LowPower,
}

/// `power.cpufreq`: who writes the cpufreq files in sysfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpufreqControl {
    /// The gateway writes them (it needs the right to: root, or a fixture tree in tests).
    Direct,
    /// The gateway writes its wish to `cpufreq-request` in its runtime directory and the
    /// privileged `mcp-gateway-cpufreq.service`, started by a path unit, applies it.
    Helper,
    /// cpufreq is left alone (the default: a gateway started by hand does not retune the
    /// machine it runs on).
    Off,
}

/// `[device]`: where the device's own facts are read from.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfig {
    /// Directory under which `/proc`, `/sys` and `/etc/os-release` are read; `/` on a device,
    /// a fixture tree in tests or a container that bind-mounts the host's.
    #[serde(deserialize_with = "path")]
    pub system_root: PathBuf,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            system_root: PathBuf::from("/"),
        }
    }
}

/// `[update]`: where A/B update status comes from ([`crate::update`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpdateConfig {
    /// The `rauc` command `GET /v1/update` and `update_status` ask; on an image without RAUC
    /// they answer 503 `update_unavailable`.
    #[serde(deserialize_with = "path")]
    pub rauc: PathBuf,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        Self {
            rauc: PathBuf::from("/usr/bin/rauc"),
        }
    }
}

/// `[memory]`: budgets of the subsystems whose memory depends on traffic ([`crate::memory`]);
/// the model's is `models.max_memory_mb`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Request bodies being read or handled, and whole response bodies until they are sent,
    /// all connections together.
    pub http_buffers_kb: u64,
    /// Metrics snapshots kept for telemetry collectors that cannot be reached.
    pub telemetry_buffer_kb: u64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            http_buffers_kb: 16 * 1024,
            telemetry_buffer_kb: 8 * 1024,
        }
    }
}

/// `[analytics]`: sensor streams scored on the device ([`crate::analytics`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyticsConfig {
    /// How often every stream is read; stretched by the power governor in low-power.
    pub sample_interval_ms: u64,
    /// Where each anomaly is POSTed as JSON; one that cannot be delivered now waits in the
    /// offline queue. None: anomalies are only logged, counted and notified over MCP.
    #[serde(deserialize_with = "opt_string")]
    pub alert_url: Option<String>,
    /// Bearer token sent with each alert.
    #[serde(deserialize_with = "opt_secret")]
    pub alert_token: Option<Secret>,
    pub streams: Vec<StreamConfig>,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            sample_interval_ms: 10_000,
            alert_url: None,
            alert_token: None,
            streams: Vec::new(),
        }
    }
}

/// `[[analytics.streams]]`: one sensor reading, scored as it is sampled.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    #[serde(deserialize_with = "string")]
    pub name: String,
    /// `thermal/ZONE`, `hwmon/CHIP/SENSOR` or `iio/DEVICE/CHANNEL`, as `device_sensors`
    /// reports them (`thermal/thermal_zone0`, `hwmon/ina3221/curr1`, `iio/bme280/temp`).
    #[serde(deserialize_with = "string")]
    pub sensor: String,
    /// Robust z-score beyond which a sample is an anomaly.
    pub threshold: f64,
    /// Samples that only build the baseline before scoring starts.
    pub warmup_samples: u32,
    /// Weight of the newest sample in the moving baseline and spread (EWMA alpha).
    pub smoothing: f64,
    /// Smallest spread, in the sensor's unit: set it to the sensor's resolution, so that a
    /// reading that held still for a while and then ticks by one step is not an anomaly.
    pub min_deviation: f64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            sensor: String::new(),
            threshold: 5.0,
            warmup_samples: 20,
            smoothing: 0.05,
            min_deviation: 0.0,
        }
    }
}

/// `[[upstreams]]`: one MCP server to federate, spawned over stdio (`command`) or reached over
/// Streamable HTTP (`url`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    #[serde(deserialize_with = "string")]
    pub name: String,
    /// Namespace put in front of this upstream's tool, prompt and resource names.
    #[serde(deserialize_with = "opt_string")]
    pub prefix: Option<String>,
    #[serde(deserialize_with = "opt_string")]
    pub command: Option<String>,
    #[serde(deserialize_with = "string_vec")]
    pub args: Vec<String>,
    /// Environment of a stdio upstream; values are treated as secrets.
    #[serde(deserialize_with = "secret_map")]
    pub env: std::collections::BTreeMap<String, Secret>,
    #[serde(deserialize_with = "opt_string")]
    pub url: Option<String>,
    /// Extra HTTP headers for a url upstream; values are treated as secrets.
    #[serde(deserialize_with = "secret_map")]
    pub headers: std::collections::BTreeMap<String, Secret>,
    #[serde(deserialize_with = "opt_secret")]
    pub bearer_token: Option<Secret>,
    #[serde(deserialize_with = "opt_path")]
    pub tls_client_cert: Option<PathBuf>,
    #[serde(deserialize_with = "opt_path")]
    pub tls_client_key: Option<PathBuf>,
    #[serde(deserialize_with = "string_vec")]
    pub allow_tools: Vec<String>,
    #[serde(deserialize_with = "string_vec")]
    pub deny_tools: Vec<String>,
    /// Per-call timeout; 0 takes `gateway.request_timeout_ms`.
    pub timeout_ms: u64,
    /// Seconds between liveness pings while the upstream is connected; 0: none, and a dead
    /// upstream is noticed only when a call to it cannot be sent or its stream breaks.
    pub ping_interval_seconds: u32,
    /// A tool call this (url) upstream cannot be reached for is stored in the offline queue
    /// and delivered when it comes back, instead of failing.
    pub deferrable: bool,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            prefix: None,
            command: None,
            args: Vec::new(),
            env: Default::default(),
            url: None,
            headers: Default::default(),
            bearer_token: None,
            tls_client_cert: None,
            tls_client_key: None,
            allow_tools: Vec::new(),
            deny_tools: Vec::new(),
            timeout_ms: 0,
            ping_interval_seconds: 30,
            deferrable: false,
        }
    }
}

/// Compression of queued payloads and telemetry batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Zstd,
    Lz4,
}

impl Compression {
    /// The default: zstd in a build with it (the `compression` feature), else lz4.
    pub const BEST_BUILT: Self = if cfg!(feature = "compression") {
        Self::Zstd
    } else {
        Self::Lz4
    };
}

/// A credential: a string in the file (usually `${VAR}` from the environment), or
/// `{ sealed = "name" }`, a file `mcp-gateway secret seal` made that only this device's TPM
/// unseals, in the boot state it was sealed in. Its `Debug` form is redacted so it never
/// reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(SecretValue);

#[derive(Clone, PartialEq, Eq)]
enum SecretValue {
    Given(String),
    /// Not unsealed yet: the gateway does that at start and on reload, before any use.
    Sealed(String),
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretValue::Given(value.into()))
    }

    /// A reference to the sealed secret `name`.
    pub fn sealed(name: impl Into<String>) -> Self {
        Self(SecretValue::Sealed(name.into()))
    }

    /// The credential itself, for the one place that sends it. Empty for a sealed secret that
    /// was not unsealed (the gateway refuses to start or reload with one).
    pub fn expose(&self) -> &str {
        match &self.0 {
            SecretValue::Given(value) => value,
            SecretValue::Sealed(_) => "",
        }
    }

    /// The name of the sealed secret this still refers to.
    pub fn sealed_name(&self) -> Option<&str> {
        match &self.0 {
            SecretValue::Sealed(name) => Some(name),
            SecretValue::Given(_) => None,
        }
    }

    /// Replaces a sealed reference with its unsealed value.
    pub fn unsealed(&mut self, value: String) {
        self.0 = SecretValue::Given(value);
    }
}

/// Serialized as `"<redacted>"`: the effective configuration can be shown without its secrets.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Config {
    /// Every secret with its key (`models.cloud_api_key`, `upstreams[0].headers.X`, …).
    pub fn secrets_mut(&mut self) -> Vec<(String, &mut Secret)> {
        let mut secrets = Vec::new();
        if let Some(key) = &mut self.models.cloud_api_key {
            secrets.push(("models.cloud_api_key".to_owned(), key));
        }
        if let Some(token) = &mut self.analytics.alert_token {
            secrets.push(("analytics.alert_token".to_owned(), token));
        }
        for (i, u) in self.upstreams.iter_mut().enumerate() {
            for (name, value) in &mut u.env {
                secrets.push((format!("upstreams[{i}].env.{name}"), value));
            }
            for (name, value) in &mut u.headers {
                secrets.push((format!("upstreams[{i}].headers.{name}"), value));
            }
            if let Some(token) = &mut u.bearer_token {
                secrets.push((format!("upstreams[{i}].bearer_token"), token));
            }
        }
        secrets
    }

    /// Starts a configuration from the embedded defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// Reads, interpolates and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses configuration text; `origin` names it in error messages (usually the file path).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| {
            ConfigError::at_span(origin, text, e.span(), String::new(), e.message())
        })?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            ConfigError::at_span(origin, text, inner.span(), key, inner.message())
        })?;
        config
            .validate()
            .map_err(|problems| ConfigError::located(origin, text, problems))?;
        Ok(config)
    }

    /// Checks ranges and the rules that tie keys together. Returns every problem found.
    pub fn validate(&self) -> Result<(), Vec<Invalid>> {
        validate::check(self)
    }
}

/// Where the gateway keeps state when the configuration does not say: systemd's
/// `StateDirectory=`, else the XDG state directory of the user, else `/var/lib/mcp-edge`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        // systemd passes a colon-separated list when several are configured; the first is ours.
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        return PathBuf::from(first);
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("mcp-edge");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/state/mcp-edge");
    }
    PathBuf::from("/var/lib/mcp-edge")
}
