//! The HTTP side of the gateway: listener, connection limit, HTTP/1.1 and HTTP/2 on hyper,
//! graceful drain, and live reload of the settings that can change without a restart.

mod attestation;
mod auth;
#[cfg(fuzzing)]
pub mod fuzzing;
mod host;
mod oauth;
mod power;
mod queue;
mod reload;
mod response;
mod routes;
#[cfg_attr(not(feature = "tls"), path = "tls_absent.rs")]
mod tls;
mod update;
mod v1;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

pub use auth::hash_token;
pub use reload::ReloadReport;
pub use tls::TlsError;

use crate::analytics::{AlertSender, StreamProcessor};
use crate::cloud::CloudClient;
use crate::config::{Config, ConfigError, SecurityConfig};
use crate::device::SystemRoot;
use crate::health::Health;
use crate::inference::LocalModel;
use crate::mcp::{self, builtin::DeviceContext, McpGateway};
use crate::memory::{MemoryBudgets, MemoryLimits, MemoryStats, ModelMemory};
use crate::power::Governor;
use crate::queue::OfflineQueue;
use crate::router::{policy_router, Completions, ToolHost};
use crate::systemd;
use crate::telemetry::Metrics;
use crate::tpm::Attestation;

use host::AllowedHosts;

/// Largest request head (request line plus headers) accepted over HTTP/1.1; more gets 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most headers in one request.
const MAX_HEADERS: usize = 100;
/// Largest decoded header list over HTTP/2.
const MAX_H2_HEADER_LIST: u32 = 64 * 1024;
/// Concurrent HTTP/2 streams per connection.
const MAX_H2_STREAMS: u32 = 64;
/// An HTTP/1.1 connection must deliver the next request head within this time, also while it
/// sits idle between requests; otherwise it is closed and its slot freed.
const HEAD_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2 connections are pinged this often; a peer that does not answer within the same time
/// is disconnected.
const H2_KEEPALIVE: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (for example EMFILE) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Why the gateway could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration broke a rule (only possible for a `Config` built by hand).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source} (is another process using the port?)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The local model cannot be loaded.
    #[error("local model: {0}")]
    LocalModel(#[from] crate::inference::LoadError),
    /// The cloud client cannot be set up.
    #[error("cloud endpoint: {0}")]
    Cloud(String),
    /// The listening socket is unusable.
    #[error("the listening socket is unusable: {0}")]
    Listener(std::io::Error),
    /// The TLS certificate, key or client CA cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The TPM cannot be used though `attestation_required` is set, or a sealed secret cannot
    /// be unsealed.
    #[error(transparent)]
    Tpm(#[from] crate::tpm::TpmError),
    /// The offline queue's database cannot be opened.
    #[error("{0} (offline.persistence_path)")]
    Queue(#[from] crate::queue::StoreError),
    /// The anomaly alerts' HTTP client cannot be set up.
    #[error("{0}")]
    Alerts(String),
}

/// Settings read on every request; replaced as a whole on reload.
#[derive(Debug)]
struct LiveSettings {
    request_timeout: Duration,
    max_body_bytes: u64,
    allowed_hosts: AllowedHosts,
    metrics_enabled: bool,
    /// `[[security.clients]]`: tokens, scopes, rates (buckets start full after a reload).
    clients: auth::Clients,
}

impl LiveSettings {
    fn from_config(config: &Config) -> Self {
        Self {
            request_timeout: Duration::from_millis(config.gateway.request_timeout_ms),
            max_body_bytes: config.gateway.max_body_bytes,
            allowed_hosts: AllowedHosts::new(&config.gateway.allowed_hosts),
            metrics_enabled: config.telemetry.enabled,
            clients: auth::Clients::new(&config.security.clients, &config.security.oauth),
        }
    }
}

/// State shared by the accept loop, every connection and every [`GatewayHandle`].
#[derive(Debug)]
struct Shared {
    config: Arc<RwLock<Config>>,
    live: RwLock<Arc<LiveSettings>>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    mcp: McpGateway,
    /// The local model, the cloud and the router between them.
    completions: Completions,
    /// Requests waiting for the link, and their sync.
    queue: OfflineQueue,
    /// Quotes for `/v1/attestation` (or why there are none).
    attestation: Arc<Attestation>,
    /// The power governor behind `/v1/power`.
    power: Arc<Governor>,
    /// RAUC's view of the A/B slots, behind `/v1/update`.
    update: crate::update::UpdateStatus,
    /// Sensor stream analytics (with streams configured), and where its alerts go.
    analytics: Option<StreamProcessor>,
    alerts: Option<AlertSender>,
    /// What HTTP bodies and telemetry snapshots may hold, and the model's budget.
    memory: MemoryBudgets,
    /// `/mcp`; its token ends open SSE streams at shutdown so that the drain can finish.
    mcp_http: mcp::transport::HttpService,
    mcp_streams: CancellationToken,
    started: Instant,
    shutdown: watch::Sender<bool>,
    /// TLS for new connections (`None`: plain HTTP); replaced when SIGHUP re-reads the files.
    tls: RwLock<Option<Arc<tls::ServerConfig>>>,
}

impl Shared {
    fn tls(&self) -> Option<tls::Acceptor> {
        let config = self.tls.read().unwrap_or_else(|p| p.into_inner()).clone();
        config.map(tls::Acceptor::from)
    }

    fn live(&self) -> Arc<LiveSettings> {
        // Readers only clone an Arc and writers only swap it: a poisoned lock still holds a
        // complete value.
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The gateway: build it from a [`Config`], then [`serve`](Gateway::serve) it.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use mcp_edge_gateway::{Config, Gateway};
///
/// let config = Config::builder().offline_queue_size(1_000).build()?;
/// let gateway = Gateway::new(config)?;
/// let handle = gateway.handle(); // for shutdown() and reload() from elsewhere
/// gateway.serve("127.0.0.1:8080".parse()?).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Gateway {
    shared: Arc<Shared>,
}

/// Controls a running gateway: stop it, or hand it a new configuration.
#[derive(Debug, Clone)]
pub struct GatewayHandle {
    shared: Arc<Shared>,
}

impl Gateway {
    /// Checks the configuration and prepares the gateway; nothing listens yet.
    pub fn new(mut config: Config) -> Result<Self, GatewayError> {
        config
            .validate()
            .map_err(|problems| ConfigError::located("configuration", "", problems))?;
        // Measured before anything else runs; sealed secrets unseal only after that.
        let state_dir = crate::config::default_state_dir();
        let attestation = Arc::new(Attestation::start(&config, &state_dir)?);
        crate::tpm::unseal_secrets(&mut config, attestation.tpm())?;
        crate::tls::install_client_provider();
        let live = LiveSettings::from_config(&config);
        let tls = tls::server_config(&config.security)?;
        let health = Arc::new(Health::default());
        let metrics = Arc::new(Metrics::new());
        let power = Arc::new(Governor::new(
            &config.power,
            SystemRoot::new(&config.device.system_root),
            Arc::clone(&metrics),
        ));
        let queue = OfflineQueue::open(&config, Arc::clone(&metrics), power.pace())?;
        health.set(
            "attestation",
            true,
            attestation
                .unavailable_reason()
                .map_or("TPM in use".into(), |r| format!("unavailable: {r}")),
        );
        let update = crate::update::UpdateStatus::new(&config.update.rauc);
        let root = SystemRoot::new(&config.device.system_root);
        let analytics = (!config.analytics.streams.is_empty())
            .then(|| StreamProcessor::new(&config.analytics, root.clone(), Arc::clone(&metrics)));
        let hostname = crate::device::system_info(&root, &state_dir).hostname;
        let alerts =
            AlertSender::from_config(&config.analytics, hostname).map_err(GatewayError::Alerts)?;
        let device = DeviceContext {
            root,
            state_dir,
            config: Arc::new(RwLock::new(config.clone())),
            metrics: Arc::clone(&metrics),
            queue: Some(queue.clone()),
            attestation: Some(Arc::clone(&attestation)),
            power: Some(Arc::clone(&power)),
            update: Some(update.clone()),
            analytics: analytics.clone(),
        };
        let config = Arc::clone(&device.config);
        let upstreams = config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .upstreams
            .clone();
        let models = config_snapshot(&config).models;
        let local = LocalModel::from_config(&models)?;
        let memory = MemoryBudgets::new(
            MemoryLimits::from_config(&config_snapshot(&config).memory),
            model_memory(&models, local.as_ref()),
            &metrics,
        );
        let mcp = McpGateway::new(device, &upstreams, Arc::clone(&health), local.clone());
        let completions = completions(&models, local, &mcp, power.local_inference())?;
        health.set("models", true, models_summary(&completions));
        let mcp_streams = CancellationToken::new();
        let mcp_http = mcp::transport::http_service(&mcp, mcp_streams.clone());
        let shared = Arc::new(Shared {
            config,
            live: RwLock::new(Arc::new(live)),
            metrics,
            health,
            mcp,
            completions,
            queue,
            attestation,
            power,
            update,
            analytics,
            alerts,
            memory,
            mcp_http,
            mcp_streams,
            started: Instant::now(),
            shutdown: watch::channel(false).0,
            tls: RwLock::new(tls),
        });
        shared.health.set("http", false, "not listening yet");
        Ok(Self { shared })
    }

    pub fn handle(&self) -> GatewayHandle {
        GatewayHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Binds `addr` and serves until [`GatewayHandle::shutdown`].
    pub async fn serve(self, addr: SocketAddr) -> Result<(), GatewayError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| GatewayError::Bind { addr, source })?;
        self.serve_listener(listener).await
    }

    /// Serves on a listener that is already bound (for example one handed over by systemd),
    /// until [`GatewayHandle::shutdown`]; then drains open requests for up to
    /// `gateway.request_timeout_ms` and returns.
    pub async fn serve_listener(self, listener: TcpListener) -> Result<(), GatewayError> {
        let shared = self.shared;
        let addr = listener.local_addr().map_err(GatewayError::Listener)?;
        let max_connections = shared
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .gateway
            .max_connections;
        let permits = Arc::new(Semaphore::new(max_connections as usize));
        let http = http_builder();
        let graceful = GracefulShutdown::new();
        let mut shutdown = shared.shutdown.subscribe();

        shared.mcp.start();
        let background = CancellationToken::new();
        let telemetry = shared
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .telemetry
            .clone();
        tokio::spawn(crate::telemetry::export::run(
            telemetry,
            Arc::clone(&shared.metrics),
            shared.power.pace(),
            Arc::clone(&shared.memory.telemetry_buffer),
            background.clone(),
        ));
        tokio::spawn(Arc::clone(&shared.power).run(background.clone()));
        if let Some(analytics) = &shared.analytics {
            let alerts = shared
                .alerts
                .clone()
                .map(|sender| (sender, shared.queue.clone()));
            tokio::spawn(
                analytics
                    .clone()
                    .run(shared.power.pace(), alerts, background.clone()),
            );
        }
        let replay = queue::Replay {
            completions: shared.completions.clone(),
            mcp: shared.mcp.clone(),
            alerts: shared.alerts.clone(),
            metrics: Arc::clone(&shared.metrics),
        };
        shared.queue.start(Arc::new(replay), background.clone());
        if let Some(model) = shared.completions.local() {
            let model = model.clone();
            tokio::spawn(async move { model.warm_up().await });
        }
        let scheme = match shared.tls().is_some() {
            true if config_snapshot(&shared.config)
                .security
                .tls_client_ca
                .is_some() =>
            {
                "https, client certificates required"
            }
            true => "https",
            false => "http",
        };
        shared
            .health
            .set("http", true, format!("listening on {addr} ({scheme})"));
        info!(address = %addr, max_connections, scheme, "listening");
        systemd::notify_ready(&format!("serving on {addr}"));
        let watchdog = systemd::spawn_watchdog();

        loop {
            // A connection is accepted only when a slot is free; the rest wait in the kernel's
            // accept queue, so a burst slows clients down instead of failing them.
            let permit = tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => permit,
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            let Ok(permit) = permit else { break };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            };
            debug!(%peer, "connection accepted");
            // Responses are small and latency matters more than packet count.
            let _ = stream.set_nodelay(true);
            let service = {
                let shared = Arc::clone(&shared);
                service_fn(move |request| routes::serve(Arc::clone(&shared), request))
            };
            let (http, watcher, tls) = (http.clone(), graceful.watcher(), shared.tls());
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                shared.metrics.connection_opened();
                let served = match tls {
                    None => {
                        let connection = http.serve_connection(TokioIo::new(stream), service);
                        watcher.watch(connection.into_owned()).await
                    }
                    // The handshake runs in the connection's task, under the same time limit
                    // as a request head, so a slow or silent client holds only its own slot.
                    Some(tls) => match tokio::time::timeout(HEAD_READ_TIMEOUT, tls.accept(stream))
                        .await
                    {
                        Ok(Ok(stream)) => {
                            let connection = http.serve_connection(TokioIo::new(stream), service);
                            watcher.watch(connection.into_owned()).await
                        }
                        Ok(Err(e)) => {
                            debug!(%peer, error = %e, "TLS handshake refused");
                            Ok(())
                        }
                        Err(_) => {
                            debug!(%peer, "TLS handshake timed out");
                            Ok(())
                        }
                    },
                };
                if let Err(e) = served {
                    debug!(%peer, error = %e, "connection ended with an error");
                }
                shared.metrics.connection_closed();
                drop(permit);
            });
        }

        drop(listener);
        if let Some(watchdog) = watchdog {
            watchdog.abort();
        }
        let deadline = shared.live().request_timeout;
        shared.health.set("http", false, "draining: shutting down");
        shared.mcp_streams.cancel();
        shared.mcp.shutdown();
        background.cancel();
        info!(
            deadline_ms = deadline.as_millis() as u64,
            "stopped accepting; draining open connections"
        );
        systemd::notify_stopping("draining open connections");
        if tokio::time::timeout(deadline, graceful.shutdown())
            .await
            .is_err()
        {
            warn!(
                deadline_ms = deadline.as_millis() as u64,
                "drain deadline passed; closing the remaining connections"
            );
        } else {
            info!("all connections drained");
        }
        Ok(())
    }
}

impl GatewayHandle {
    /// Stops accepting connections and starts the drain; `serve` returns when it is done.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    /// Applies what can change live from `new` and reports what needs a restart. `new` must
    /// be valid (it comes from [`Config::from_file`] or the builder).
    pub fn reload(&self, new: Config) -> ReloadReport {
        let mut current = self
            .shared
            .config
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let mut report = ReloadReport::between(&current, &new);
        let live = Arc::new(LiveSettings::from_config(&new));
        *self.shared.live.write().unwrap_or_else(|p| p.into_inner()) = live;
        self.shared
            .memory
            .set_limits(MemoryLimits::from_config(&new.memory));
        let tls_reloaded = self.reload_tls(&current.security, &new.security);
        let security = new.security.clone();
        // Keys that need a restart keep their running value until then.
        *current = reload::apply_live(&current, new);
        if tls_reloaded {
            report.applied.push("security.tls");
            current.security.tls_cert = security.tls_cert;
            current.security.tls_key = security.tls_key;
            current.security.tls_client_ca = security.tls_client_ca;
        }
        self.shared.metrics.reload(true);
        report
    }

    /// Unseals the `{ sealed = "name" }` secrets of a configuration about to be handed to
    /// [`GatewayHandle::reload`], with the TPM this gateway uses.
    pub fn unseal_secrets(&self, config: &mut Config) -> Result<(), crate::tpm::TpmError> {
        crate::tpm::unseal_secrets(config, self.shared.attestation.tpm())
    }

    /// The offline queue: `queue_for_sync` stores an entry for the sync loop to deliver,
    /// `sync_offline_queue` delivers what waits now, `status` and `entry` report.
    pub fn offline_queue(&self) -> &OfflineQueue {
        &self.shared.queue
    }

    /// The power governor: its status, the profile setting, and when it finds the gateway idle.
    pub fn power(&self) -> &Arc<Governor> {
        &self.shared.power
    }

    /// Re-reads the certificate, key and client CA (rotated files keep their paths) when TLS
    /// stays on; turning TLS on or off needs a restart. A set that cannot be used is logged and
    /// the running one kept. Returns whether the new set is in use.
    fn reload_tls(&self, old: &SecurityConfig, new: &SecurityConfig) -> bool {
        if old.tls_cert.is_none() || new.tls_cert.is_none() {
            return false;
        }
        match tls::server_config(new) {
            Ok(config) => {
                *self.shared.tls.write().unwrap_or_else(|p| p.into_inner()) = config;
                info!("TLS certificate, key and client CA re-read");
                true
            }
            Err(e) => {
                error!(error = %e, "TLS reload refused; new connections keep the running certificate");
                false
            }
        }
    }

    /// What each memory budget holds now, its limit and peak, and the process's resident
    /// memory: the `GET /v1/memory` answer.
    pub fn memory_stats(&self) -> MemoryStats {
        self.shared.memory.stats()
    }

    /// New limits for the HTTP buffers and the telemetry buffer until the next restart or
    /// reload; what is held stays held, and the limits apply to what is taken next. Refused
    /// when the HTTP budget could not hold one request of `gateway.max_body_bytes`.
    pub fn set_memory_limits(&self, limits: MemoryLimits) -> Result<(), String> {
        let max_body = self.shared.live().max_body_bytes;
        if limits.http_buffers_bytes < max_body {
            return Err(format!(
                "http_buffers_bytes {} cannot hold one request of gateway.max_body_bytes ({max_body} bytes)",
                limits.http_buffers_bytes
            ));
        }
        self.shared.memory.set_limits(limits);
        info!(
            http_buffers_bytes = limits.http_buffers_bytes,
            telemetry_buffer_bytes = limits.telemetry_buffer_bytes,
            "memory limits set"
        );
        Ok(())
    }

    /// Counts a reload that was refused because the new file is invalid.
    pub fn reload_rejected(&self) {
        self.shared.metrics.reload(false);
    }
}

/// The model's budget and what the loaded model holds against it.
fn model_memory(models: &crate::config::ModelsConfig, local: Option<&LocalModel>) -> ModelMemory {
    let estimate = local.map(|model| model.info().memory);
    let field =
        |pick: fn(&crate::inference::MemoryEstimate) -> u64| estimate.as_ref().map_or(0, pick);
    ModelMemory {
        limit_bytes: u64::from(models.max_memory_mb) * 1024 * 1024,
        used_bytes: field(|m| m.weights_bytes + m.kv_cache_bytes + m.working_bytes),
        weights_bytes: field(|m| m.weights_bytes),
        kv_cache_bytes: field(|m| m.kv_cache_bytes),
        working_bytes: field(|m| m.working_bytes),
    }
}

fn config_snapshot(config: &RwLock<Config>) -> Config {
    config.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The completion service: the local model, the cloud client and the configured router; the
/// model may use the MCP tools of `mcp`.
fn completions(
    m: &crate::config::ModelsConfig,
    local: Option<LocalModel>,
    mcp: &McpGateway,
    local_gate: Arc<AtomicBool>,
) -> Result<Completions, GatewayError> {
    let cloud = CloudClient::from_config(m).map_err(GatewayError::Cloud)?;
    let tools: Arc<dyn ToolHost> = Arc::new(mcp.clone());
    Ok(Completions::new(
        local,
        cloud,
        Box::new(policy_router(m)),
        Some(tools),
        m.max_tokens,
        m.max_tool_rounds,
        local_gate,
    ))
}

/// `/health`'s line for the completion service: which backends it has.
fn models_summary(completions: &Completions) -> String {
    let local = completions
        .local()
        .map_or("no local model".to_owned(), |m| {
            let info = m.info();
            format!("local model {} ({})", info.name, info.quantization)
        });
    let cloud = if completions.cloud().is_some() {
        "cloud endpoint configured"
    } else {
        "no cloud endpoint"
    };
    format!("{local}; {cloud}")
}

fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .header_read_timeout(HEAD_READ_TIMEOUT)
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_H2_HEADER_LIST)
        .max_concurrent_streams(MAX_H2_STREAMS)
        .keep_alive_interval(H2_KEEPALIVE)
        .keep_alive_timeout(H2_KEEPALIVE);
    builder
}
