//! One federated MCP server: its connection (a child process over stdio, or Streamable HTTP),
//! kept alive by a supervisor that reconnects with backoff, and its last known listing.
//!
//! While an upstream is down its entries stay in the catalog, so a client's view does not
//! flicker; calls to it fail at once with an error that says it is reconnecting. A Streamable
//! HTTP upstream that dies closes nothing the gateway holds, so the supervisor pings each
//! connected upstream (`ping_interval_seconds`), and at once when a call to it could not be
//! sent or its listen stream broke; one that does not answer is reconnected like a closed one.

// Sampling, roots and logging are the 2025-11-25 way; see mcp/mod.rs.
#![allow(deprecated)]

use std::process::Stdio;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rmcp::model::{
    ClientConfig, ClientRequest, ClientResult, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequestParams, ElicitResult, ListRootsResult, LoggingMessageNotificationParam, Request,
    ResourceUpdatedNotificationParam, ServerRequest,
};
use rmcp::model::{LoggingLevel, ProtocolVersion};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use rmcp::service::{
    NotificationContext, Peer, RequestContext, RoleClient, RoleServer, RunningService,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ErrorData as McpError};
use tokio::io::AsyncBufReadExt;
use tokio::sync::Notify;
use tracing::{info, warn};

use super::catalog::Listing;
use super::progress::{ProgressRoutes, ProgressTap};
use crate::config::UpstreamConfig;
use crate::telemetry::Metrics;

/// First and longest pause between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a liveness ping may take before the upstream counts as gone.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Connection state as `/health` and errors report it.
#[derive(Debug, Clone)]
pub enum Status {
    Connecting {
        attempt: u32,
        last_error: Option<String>,
    },
    Ready,
}

/// An error for a request that never reached its upstream (no connection, or the request
/// could not be sent): safe to send again. Marked in `data` so that [`is_unreachable`] (and
/// a client) can tell it from an upstream's own failure.
pub fn unreachable(message: String) -> McpError {
    McpError::internal_error(
        message,
        Some(serde_json::json!({ "upstream_unreachable": true })),
    )
}

/// Whether `error` came from [`unreachable`].
pub fn is_unreachable(error: &McpError) -> bool {
    error
        .data
        .as_ref()
        .is_some_and(|d| d["upstream_unreachable"] == true)
}

/// One upstream and its supervisor's view of it.
#[derive(Debug)]
pub struct Upstream {
    pub config: UpstreamConfig,
    state: RwLock<State>,
    /// What this upstream sends back to the gateway (progress, logs, list changes).
    pub events: UpstreamEvents,
    metrics: Arc<Metrics>,
}

#[derive(Debug)]
struct State {
    status: Status,
    peer: Option<Peer<RoleClient>>,
    listing: Listing,
}

/// Shared with the upstream's `ClientHandler`: where its notifications and requests go.
#[derive(Debug, Clone, Default)]
pub struct UpstreamEvents {
    pub progress: ProgressRoutes,
    /// Signalled when the upstream says a list changed: the supervisor refreshes the listing.
    pub list_changed: Arc<Notify>,
    /// Signalled when a request could not be sent to the upstream or its listen stream broke:
    /// the supervisor pings it at once.
    pub suspect: Arc<Notify>,
    /// The downstream client whose call to this upstream is in flight most recently: sampling,
    /// elicitation and roots requests from the upstream are relayed to it.
    pub downstream: Arc<Mutex<Option<Downstream>>>,
    /// Resources clients subscribed to, for a 2026-07-28 upstream's listen stream.
    /// URI → how many client subscriptions want it.
    pub watched: Arc<Mutex<std::collections::BTreeMap<String, usize>>>,
    /// Signalled when `watched` changes: the listen stream is reopened with the new filter.
    pub rewatch: Arc<Notify>,
    /// Notifications from the upstream that go on to downstream clients.
    pub relay: Arc<Mutex<Option<tokio::sync::mpsc::UnboundedSender<Relayed>>>>,
}

/// The client of the call in flight, and the lowest log level it wants relayed (`None`: no
/// logs, as for a 2026-07-28 request that asked for none).
#[derive(Debug, Clone)]
pub struct Downstream {
    pub peer: Peer<RoleServer>,
    pub log_level: Option<LoggingLevel>,
}

/// A notification from an upstream that the gateway passes on to its clients.
#[derive(Debug)]
pub enum Relayed {
    Log(LoggingMessageNotificationParam),
    ResourceUpdated(ResourceUpdatedNotificationParam),
}

impl Upstream {
    pub fn new(config: UpstreamConfig, metrics: Arc<Metrics>) -> Arc<Self> {
        metrics.upstream_up(&config.name, false);
        Arc::new(Self {
            config,
            state: RwLock::new(State {
                status: Status::Connecting {
                    attempt: 0,
                    last_error: None,
                },
                peer: None,
                listing: Listing::default(),
            }),
            events: UpstreamEvents::default(),
            metrics,
        })
    }

    /// Tells the supervisor that a request to this upstream failed: unless the upstream itself
    /// answered with an error, it checks the connection now rather than at the next ping.
    pub fn request_failed(&self, error: &rmcp::ServiceError) {
        if !matches!(error, rmcp::ServiceError::McpError(_)) {
            self.events.suspect.notify_one();
        }
    }

    /// Whether the live connection speaks 2026-07-28 (no sessions, no server-to-client requests).
    pub fn is_modern(&self) -> bool {
        self.read().peer.as_ref().is_some_and(speaks_2026)
    }

    /// Adds `uri` to (or removes it from) the resources whose updates this upstream's listen
    /// stream carries.
    pub fn watch_resource(&self, uri: &str, watch: bool) {
        let mut watched = self
            .events
            .watched
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let count = watched.entry(uri.to_owned()).or_default();
        let before = *count;
        *count = if watch {
            before + 1
        } else {
            before.saturating_sub(1)
        };
        let now = *count;
        if now == 0 {
            watched.remove(uri);
        }
        if (before == 0) != (now == 0) {
            self.events.rewatch.notify_one();
        }
    }

    pub fn status(&self) -> Status {
        self.read().status.clone()
    }

    pub fn listing(&self) -> Listing {
        self.read().listing.clone()
    }

    /// The live connection, or an error a client can act on.
    pub fn peer(&self) -> Result<Peer<RoleClient>, McpError> {
        let state = self.read();
        match (&state.peer, &state.status) {
            (Some(peer), Status::Ready) if !peer.is_transport_closed() => Ok(peer.clone()),
            (_, Status::Connecting { attempt, last_error }) => Err(unreachable(format!(
                "upstream \"{}\" is unavailable and being reconnected (attempt {attempt}{}); retry shortly",
                self.config.name,
                last_error.as_ref().map(|e| format!(", last error: {e}")).unwrap_or_default()
            ))),
            _ => Err(unreachable(format!(
                "upstream \"{}\" closed its connection; it is being reconnected",
                self.config.name
            ))),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the upstream connected until `shutdown` fires: connect, list, wait for the
    /// connection to end or a list to change, and reconnect with exponential backoff.
    /// `changed` is signalled whenever the listing or the status changes.
    pub async fn supervise(
        self: Arc<Self>,
        changed: Arc<Notify>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let connected = tokio::select! {
                c = self.connect() => c,
                _ = shutdown.cancelled() => return,
            };
            let running = match connected {
                Ok(running) => running,
                Err(e) => {
                    warn!(upstream = %self.config.name, attempt, error = %e, "upstream connection failed");
                    self.write().status = Status::Connecting {
                        attempt,
                        last_error: Some(e),
                    };
                    changed.notify_one();
                    let pause = backoff(attempt);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => continue,
                        _ = shutdown.cancelled() => return,
                    }
                }
            };
            let peer = running.peer().clone();
            if let Err(e) = self.refresh(&peer).await {
                warn!(upstream = %self.config.name, error = %e, "listing the upstream failed; reconnecting");
                self.write().status = Status::Connecting {
                    attempt,
                    last_error: Some(e),
                };
                changed.notify_one();
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
            {
                let mut state = self.write();
                state.peer = Some(peer.clone());
                state.status = Status::Ready;
            }
            self.metrics.upstream_up(&self.config.name, true);
            info!(upstream = %self.config.name, "upstream ready");
            attempt = 0;
            changed.notify_one();

            let closed = running.cancellation_token();
            let listener = self.is_modern().then(|| {
                tokio::spawn(listen(
                    peer.clone(),
                    self.events.clone(),
                    self.config.name.clone(),
                ))
            });
            let mut waiting = tokio::spawn(running.waiting());
            let mut probe = self.probe();
            let lost = loop {
                let check = tokio::select! {
                    _ = &mut waiting => break Lost::Closed,
                    _ = self.events.list_changed.notified() => {
                        if let Err(e) = self.refresh(&peer).await {
                            warn!(upstream = %self.config.name, error = %e, "refreshing the upstream's lists failed");
                        }
                        changed.notify_one();
                        false
                    }
                    _ = self.events.suspect.notified() => true,
                    _ = next_probe(&mut probe) => true,
                    _ = shutdown.cancelled() => {
                        closed.cancel();
                        let _ = waiting.await;
                        return;
                    }
                };
                if check {
                    if let Err(lost) = ping(&peer).await {
                        break lost;
                    }
                }
            };
            if let Some(listener) = listener {
                listener.abort();
            }
            let reason = match lost {
                Lost::Closed => "connection closed".to_owned(),
                Lost::Unanswered(reason) => reason,
            };
            if !waiting.is_finished() {
                // Closing may try to tell the upstream (an HTTP session's DELETE): not for
                // longer than a ping.
                closed.cancel();
                if tokio::time::timeout(PING_TIMEOUT, &mut waiting)
                    .await
                    .is_err()
                {
                    waiting.abort();
                }
            }
            warn!(upstream = %self.config.name, "upstream {reason}; reconnecting");
            {
                let mut state = self.write();
                state.peer = None;
                state.status = Status::Connecting {
                    attempt: 1,
                    last_error: Some(reason),
                };
            }
            self.metrics.upstream_up(&self.config.name, false);
            self.metrics.upstream_lost(&self.config.name);
            changed.notify_one();
            tokio::select! {
                _ = tokio::time::sleep(BACKOFF_MIN) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// The liveness pings' timer, first firing one interval from now; `None` when pings are
    /// off.
    fn probe(&self) -> Option<tokio::time::Interval> {
        let period = Duration::from_secs(self.config.ping_interval_seconds.into());
        (!period.is_zero()).then(|| {
            let mut probe = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            probe
        })
    }

    /// A new connection's transport, its progress notifications routed as they are read.
    fn tap<T>(&self, transport: T) -> ProgressTap<T> {
        self.events.progress.reset();
        ProgressTap::new(transport, self.events.progress.clone())
    }

    async fn connect(&self) -> Result<RunningService<RoleClient, UpstreamClient>, String> {
        let handler = UpstreamClient {
            name: self.config.name.clone(),
            events: self.events.clone(),
        };
        let running = match (&self.config.command, &self.config.url) {
            (Some(command), _) => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(&self.config.args);
                for (key, value) in &self.config.env {
                    cmd.env(key, value.expose());
                }
                let (transport, stderr) = TokioChildProcess::builder(cmd)
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("cannot start {command}: {e}"))?;
                if let Some(stderr) = stderr {
                    let name = self.config.name.clone();
                    tokio::spawn(async move {
                        let mut lines = tokio::io::BufReader::new(stderr).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            info!(upstream = %name, "stderr: {line}");
                        }
                    });
                }
                handler
                    .serve_with_lifecycle(self.tap(transport), lifecycle())
                    .await
                    .map_err(|e| format!("MCP handshake failed: {e}"))?
            }
            (None, Some(url)) => {
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.clone());
                if let Some(token) = &self.config.bearer_token {
                    config = config.auth_header(token.expose().to_owned());
                }
                let mut headers = std::collections::HashMap::new();
                for (name, value) in &self.config.headers {
                    let name = http::HeaderName::try_from(name.as_str())
                        .map_err(|e| format!("header name {name:?}: {e}"))?;
                    let value = http::HeaderValue::try_from(value.expose())
                        .map_err(|e| format!("header {name} has an invalid value: {e}"))?;
                    headers.insert(name, value);
                }
                let config = config.custom_headers(headers);
                let transport = match (&self.config.tls_client_cert, &self.config.tls_client_key) {
                    (Some(cert), Some(key)) => StreamableHttpClientTransport::with_client(
                        client_with_certificate(cert, key)?,
                        config,
                    ),
                    _ => StreamableHttpClientTransport::from_config(config),
                };
                handler
                    .serve_with_lifecycle(self.tap(transport), lifecycle())
                    .await
                    .map_err(|e| format!("MCP handshake with {url} failed: {e}"))?
            }
            (None, None) => return Err("neither command nor url is set".into()),
        };
        running
            .peer()
            .set_response_cache_config(rmcp::service::ClientCacheConfig::disabled())
            .await;
        Ok(running)
    }

    async fn refresh(&self, peer: &Peer<RoleClient>) -> Result<(), String> {
        let capabilities = peer
            .peer_info()
            .map(|info| info.capabilities.clone())
            .unwrap_or_default();
        let mut listing = Listing::default();
        let describe = |what: &str, e: rmcp::ServiceError| format!("{what}: {e}");
        if capabilities.tools.is_some() {
            listing.tools = peer
                .list_all_tools()
                .await
                .map_err(|e| describe("tools/list", e))?;
        }
        if capabilities.prompts.is_some() {
            listing.prompts = peer
                .list_all_prompts()
                .await
                .map_err(|e| describe("prompts/list", e))?;
        }
        if capabilities.resources.is_some() {
            listing.resources = peer
                .list_all_resources()
                .await
                .map_err(|e| describe("resources/list", e))?;
            listing.templates = peer
                .list_all_resource_templates()
                .await
                .map_err(|e| describe("resources/templates/list", e))?;
        }
        self.write().listing = listing;
        Ok(())
    }
}

/// The HTTP client of a url upstream that wants a client certificate (mutual TLS). The files are
/// read at every connection, so a renewed certificate and key are used from the next one.
/// Redirects are not followed (the default client follows same-origin 307/308 ones).
#[cfg(feature = "tls")]
fn client_with_certificate(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<reqwest::Client, String> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let mut pem = read(cert)?;
    pem.push(b'\n');
    pem.extend(read(key)?);
    let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
        format!(
            "{} and {} are not a PEM certificate and its private key: {e}",
            cert.display(),
            key.display()
        )
    })?;
    reqwest::Client::builder()
        .identity(identity)
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client with the client certificate: {e}"))
}

/// A build without TLS refuses `tls_client_cert` in the configuration; this is not reached.
#[cfg(not(feature = "tls"))]
fn client_with_certificate(
    _cert: &std::path::Path,
    _key: &std::path::Path,
) -> Result<reqwest::Client, String> {
    Err(crate::tls::NOT_BUILT.to_owned())
}

/// Why a live connection was given up.
enum Lost {
    Closed,
    Unanswered(String),
}

async fn next_probe(probe: &mut Option<tokio::time::Interval>) {
    match probe {
        Some(probe) => {
            probe.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A liveness ping: `Err` says why the upstream counts as gone (a transport that has closed
/// meanwhile is a closed connection). An upstream that answers with a JSON-RPC error is there.
async fn ping(peer: &Peer<RoleClient>) -> Result<(), Lost> {
    let ping = peer.send_request(ClientRequest::PingRequest(Default::default()));
    match tokio::time::timeout(PING_TIMEOUT, ping).await {
        Ok(Ok(_)) | Ok(Err(rmcp::ServiceError::McpError(_))) => Ok(()),
        Ok(Err(rmcp::ServiceError::TransportClosed)) => Err(Lost::Closed),
        Ok(Err(_)) if peer.is_transport_closed() => Err(Lost::Closed),
        Ok(Err(e)) => Err(Lost::Unanswered(format!("did not answer a ping: {e}"))),
        Err(_) => Err(Lost::Unanswered(format!(
            "did not answer a ping within {} s",
            PING_TIMEOUT.as_secs()
        ))),
    }
}

/// Whether a connection negotiated 2026-07-28 (no `initialize` in its revision).
pub fn speaks_2026(peer: &Peer<RoleClient>) -> bool {
    peer.peer_info()
        .is_some_and(|info| !info.protocol_version.has_initialize())
}

/// Keeps a `subscriptions/listen` stream open to a 2026-07-28 upstream (where list changes and
/// resource updates arrive), reopening it when the watched resources change.
async fn listen(peer: Peer<RoleClient>, events: UpstreamEvents, name: String) {
    use rmcp::model::{ServerNotification, SubscriptionFilter};
    loop {
        let watched: Vec<String> = events
            .watched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        let mut filter = SubscriptionFilter::builder()
            .tools_list_changed()
            .prompts_list_changed()
            .resources_list_changed()
            .build();
        if !watched.is_empty() {
            filter.resource_subscriptions = Some(watched);
        }
        let mut subscription = match peer.listen(filter).await {
            Ok(subscription) => subscription,
            Err(e) => {
                info!(upstream = %name, error = %e, "upstream offers no listen stream; list changes arrive on reconnect");
                return;
            }
        };
        loop {
            tokio::select! {
                next = subscription.next() => match next {
                    Ok(Some(ServerNotification::ToolListChangedNotification(_)))
                    | Ok(Some(ServerNotification::PromptListChangedNotification(_)))
                    | Ok(Some(ServerNotification::ResourceListChangedNotification(_))) => events.list_changed.notify_one(),
                    Ok(Some(ServerNotification::ResourceUpdatedNotification(update))) => {
                        if let Some(sender) = events.relay.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                            let _ = sender.send(Relayed::ResourceUpdated(update.params));
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        events.suspect.notify_one();
                        break;
                    }
                },
                _ = events.rewatch.notified() => break,
            }
        }
        if peer.is_transport_closed() {
            return;
        }
    }
}

/// 2026-07-28 where the upstream offers it (`server/discover`), else the 2025-11-25 handshake.
fn lifecycle() -> ClientLifecycleMode {
    ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        legacy_version: Some(ProtocolVersion::V_2025_11_25),
    }
}

fn backoff(attempt: u32) -> Duration {
    BACKOFF_MIN
        .saturating_mul(1 << attempt.min(8))
        .min(BACKOFF_MAX)
}

/// The gateway's client side towards one upstream.
#[derive(Debug, Clone)]
struct UpstreamClient {
    name: String,
    events: UpstreamEvents,
}

impl UpstreamClient {
    /// Relays a request from the upstream to the client whose call is in flight.
    async fn relay(&self, what: &str, request: ServerRequest) -> Result<ClientResult, McpError> {
        let downstream = self
            .events
            .downstream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .map(|d| d.peer)
            .filter(|peer| !peer.is_transport_closed())
            .ok_or_else(|| {
                McpError::internal_error(
                    format!(
                        "no client is connected to answer {what} for upstream {}",
                        self.name
                    ),
                    None,
                )
            })?;
        downstream.send_request(request).await.map_err(|e| match e {
            rmcp::ServiceError::McpError(error) => error,
            other => McpError::internal_error(
                format!("relaying {what} to the client failed: {other}"),
                None,
            ),
        })
    }
}

impl UpstreamClient {
    fn pass_on(&self, message: Relayed) {
        if let Some(sender) = self
            .events
            .relay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _ = sender.send(message);
        }
    }
}

fn wrong_answer(what: &str) -> McpError {
    McpError::internal_error(
        format!("the client answered {what} with an unexpected result"),
        None,
    )
}

impl ClientHandler for UpstreamClient {
    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.client_info = rmcp::model::Implementation::new("mcp-edge-gateway", crate::version());
        info.capabilities = rmcp::model::ClientCapabilities::builder()
            .enable_sampling()
            .enable_elicitation()
            .enable_roots()
            .build();
        info
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _cx: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        let request = ServerRequest::CreateMessageRequest(Request::new(params));
        match self.relay("sampling/createMessage", request).await? {
            ClientResult::CreateMessageResult(result) => Ok(*result),
            _ => Err(wrong_answer("sampling/createMessage")),
        }
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _cx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        match self
            .relay(
                "elicitation/create",
                ServerRequest::ElicitRequest(Request::new(params)),
            )
            .await?
        {
            ClientResult::ElicitResult(result) => Ok(result),
            _ => Err(wrong_answer("elicitation/create")),
        }
    }

    async fn list_roots(
        &self,
        _cx: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, McpError> {
        match self
            .relay(
                "roots/list",
                ServerRequest::ListRootsRequest(Default::default()),
            )
            .await?
        {
            ClientResult::ListRootsResult(result) => Ok(result),
            _ => Err(wrong_answer("roots/list")),
        }
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _cx: NotificationContext<RoleClient>,
    ) {
        self.pass_on(Relayed::Log(params));
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _cx: NotificationContext<RoleClient>,
    ) {
        self.pass_on(Relayed::ResourceUpdated(params));
    }

    async fn on_tool_list_changed(&self, _cx: NotificationContext<RoleClient>) {
        self.events.list_changed.notify_one();
    }

    async fn on_prompt_list_changed(&self, _cx: NotificationContext<RoleClient>) {
        self.events.list_changed.notify_one();
    }

    async fn on_resource_list_changed(&self, _cx: NotificationContext<RoleClient>) {
        self.events.list_changed.notify_one();
    }
}
