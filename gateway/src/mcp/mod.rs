//! The MCP side of the gateway: one server (rmcp) that shows clients the device's own tools,
//! resources and prompts next to those of every federated upstream, and routes each request
//! to its owner.
//!
//! - [`builtin`]: the device tools, resources and prompts.
//! - [`upstream`]: one federated server, its connection and its supervisor.
//! - [`catalog`]: the merged names and the routes back to their owners.
//! - `forward`: one request to its upstream (progress, cancellation, timeouts, input rounds).
//! - `progress`: an upstream's progress notifications, routed to their call in wire order.
//! - `notify`: what flows back outside requests (list changes, logs, resource updates).
//! - [`transport`]: the Streamable HTTP service behind `/mcp`, and stdio.

// Logging, sampling and roots are how 2025-11-25 clients and upstreams work; SEP-2577 deprecates
// them for 2026-07-28, and rmcp marks them deprecated. The gateway serves both revisions.
#![allow(deprecated)]

mod analytics_tools;
mod attest_tool;
pub mod builtin;
pub mod catalog;
mod deferred;
mod forward;
mod generate;
mod notify;
mod power_tools;
mod progress;
mod queue_tools;
mod update_tool;

pub use deferred::{IDEMPOTENCY_META, TOOL_CALL};
mod tool_host;
pub mod transport;
pub mod upstream;

use std::sync::{Arc, Mutex, RwLock};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientRequest, CompleteRequestParams, CompleteResult,
    CompletionInfo, GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Reference, Request, ServerCapabilities, ServerConfig, ServerResult, SetLevelRequestParams,
    SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{
    NotificationContext, Peer, RequestContext, RoleServer, SubscriptionContext, SubscriptionSink,
};
use rmcp::{ErrorData as McpError, ServerHandler};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::UpstreamConfig;
use crate::health::Health;
use builtin::DeviceContext;
use catalog::{Catalog, Listing, Owner};
use upstream::Upstream;

/// Items per page of `tools/list`, `prompts/list`, `resources/list` and
/// `resources/templates/list`; a longer list continues behind `nextCursor`.
pub const PAGE_SIZE: usize = 100;

/// The gateway's MCP server. Cheap to clone: every clone shares one state, which is what the
/// Streamable HTTP service needs (it makes a handler per session, or per request for
/// stateless clients).
#[derive(Debug, Clone)]
pub struct McpGateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    device: DeviceContext,
    builtin: Listing,
    upstreams: Vec<Arc<Upstream>>,
    catalog: RwLock<Arc<Catalog>>,
    health: Arc<Health>,
    /// Sessions of clients on the 2025-11-25 protocol, told when the catalog changes.
    sessions: Mutex<Vec<Peer<RoleServer>>>,
    /// Open `subscriptions/listen` streams of 2026-07-28 clients.
    listeners: Mutex<Vec<SubscriptionSink>>,
    /// Resource URI → sessions subscribed to it (2025-11-25 `resources/subscribe`).
    subscriptions: Mutex<std::collections::HashMap<String, Vec<Peer<RoleServer>>>>,
    log_level: Mutex<Option<LoggingLevel>>,
    /// The local model behind the `generate` tool and the `ask_local_model` prompt.
    local: Option<crate::inference::LocalModel>,
    shutdown: CancellationToken,
}

impl McpGateway {
    pub fn new(
        device: DeviceContext,
        upstreams: &[UpstreamConfig],
        health: Arc<Health>,
        local: Option<crate::inference::LocalModel>,
    ) -> Self {
        // HTTP upstreams use rustls with the ring provider (it builds for x86_64 and aarch64
        // without cmake).
        crate::tls::install_client_provider();
        let mut builtin = Listing {
            tools: builtin::tools(),
            prompts: builtin::prompts(),
            resources: builtin::resources(),
            templates: Vec::new(),
        };
        if device.queue.is_some() {
            builtin.tools.extend(queue_tools::tools());
        }
        if device.attestation.is_some() {
            builtin.tools.push(attest_tool::tool());
        }
        if device.power.is_some() {
            builtin.tools.extend(power_tools::tools());
            builtin.resources.push(power_tools::resource());
        }
        if device.update.is_some() {
            builtin.tools.push(update_tool::tool());
        }
        if device.analytics.is_some() {
            builtin.tools.extend(analytics_tools::tools());
            builtin.resources.push(analytics_tools::resource());
        }
        if let Some(model) = &local {
            builtin.tools.push(generate::tool(model));
            builtin.prompts.push(generate::prompt(model));
        }
        let upstreams: Vec<Arc<Upstream>> = upstreams
            .iter()
            .map(|config| Upstream::new(config.clone(), Arc::clone(&device.metrics)))
            .collect();
        let gateway = Self {
            inner: Arc::new(Inner {
                device,
                builtin,
                upstreams,
                catalog: RwLock::default(),
                health,
                sessions: Mutex::default(),
                subscriptions: Mutex::default(),
                listeners: Mutex::default(),
                log_level: Mutex::default(),
                local,
                shutdown: CancellationToken::new(),
            }),
        };
        gateway.rebuild_catalog();
        gateway
    }

    /// A gateway outside the HTTP server (stdio mode), with its own metrics and health board.
    pub fn standalone(
        config: crate::config::Config,
        local: Option<crate::inference::LocalModel>,
    ) -> Self {
        let device = DeviceContext {
            root: crate::device::SystemRoot::new(&config.device.system_root),
            state_dir: crate::config::default_state_dir(),
            metrics: Arc::new(crate::telemetry::Metrics::new()),
            config: Arc::new(RwLock::new(config.clone())),
            queue: None,
            attestation: None,
            power: None,
            update: None,
            analytics: None,
        };
        Self::new(
            device,
            &config.upstreams,
            Arc::new(Health::default()),
            local,
        )
    }

    /// Starts one supervisor per upstream and the task that rebuilds the catalog when any of
    /// them changes. Call once, inside the runtime.
    pub fn start(&self) {
        self.report_health();
        if let Some(analytics) = &self.inner.device.analytics {
            self.announce_anomalies(analytics);
        }
        let changed = Arc::new(Notify::new());
        for upstream in &self.inner.upstreams {
            tokio::spawn(
                Arc::clone(upstream).supervise(Arc::clone(&changed), self.inner.shutdown.clone()),
            );
            self.relay_notifications(upstream);
        }
        let gateway = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = changed.notified() => gateway.on_upstream_change().await,
                    _ = gateway.inner.shutdown.cancelled() => return,
                }
            }
        });
    }

    /// Stops the upstream supervisors and closes their connections.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.inner.catalog.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Rebuilds the merged catalog; returns whether its names changed.
    fn rebuild_catalog(&self) -> bool {
        let listings: Vec<Listing> = self.inner.upstreams.iter().map(|u| u.listing()).collect();
        let sources: Vec<(&UpstreamConfig, &Listing)> = self
            .inner
            .upstreams
            .iter()
            .map(|u| &u.config)
            .zip(listings.iter())
            .collect();
        let catalog = Catalog::build(&self.inner.builtin, &sources);
        // Said once, not again at every rebuild (each reconnect is one).
        let known = self.catalog();
        for collision in &catalog.collisions {
            if !known.collisions.contains(collision) {
                warn!("{collision}");
            }
        }
        let mut current = self
            .inner
            .catalog
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let names = |c: &Catalog| {
            (
                c.tools
                    .iter()
                    .map(|t| t.name.to_string())
                    .collect::<Vec<_>>(),
                c.prompts.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
                c.resources
                    .iter()
                    .map(|r| r.uri.clone())
                    .collect::<Vec<_>>(),
                c.templates
                    .iter()
                    .map(|t| t.uri_template.clone())
                    .collect::<Vec<_>>(),
            )
        };
        let changed = names(&current) != names(&catalog);
        *current = Arc::new(catalog);
        changed
    }

    /// The open 2025-11-25 sessions (closed ones are dropped on the way).
    fn sessions(&self) -> std::sync::MutexGuard<'_, Vec<Peer<RoleServer>>> {
        let mut sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        sessions.retain(|peer| !peer.is_transport_closed());
        sessions
    }

    /// Runs a built-in tool (the device tools, and `generate` when a local model is loaded);
    /// `None` when there is no such tool.
    async fn call_builtin(
        &self,
        name: &str,
        arguments: Option<&serde_json::Map<String, serde_json::Value>>,
        cancel: CancellationToken,
    ) -> Option<rmcp::model::CallToolResult> {
        if let (generate::GENERATE, Some(model)) = (name, &self.inner.local) {
            if let Some(refusal) = power_tools::refuse_local(self.inner.device.power.as_deref()) {
                return Some(refusal);
            }
            return Some(generate::call(model, arguments, cancel).await);
        }
        if let Some(power) = &self.inner.device.power {
            if let Some(result) = power_tools::call(power, name, arguments) {
                return Some(result);
            }
        }
        if let Some(analytics) = &self.inner.device.analytics {
            if let Some(result) = analytics_tools::call(analytics, name, arguments) {
                return Some(result);
            }
        }
        if let (update_tool::UPDATE_STATUS, Some(update)) = (name, &self.inner.device.update) {
            return Some(update_tool::call(update).await);
        }
        if let (attest_tool::ATTEST, Some(attestation)) = (name, &self.inner.device.attestation) {
            return Some(attest_tool::call(attestation, arguments).await);
        }
        if let Some(queue) = &self.inner.device.queue {
            if let Some(result) = queue_tools::call(queue, name, arguments).await {
                return Some(result);
            }
        }
        builtin::call_tool(&self.inner.device, name, arguments)
    }

    fn upstream(&self, owner: Owner) -> Option<&Arc<Upstream>> {
        match owner {
            Owner::Upstream(i) => self.inner.upstreams.get(i),
            Owner::Builtin => None,
        }
    }
}

fn unexpected(name: &str) -> McpError {
    McpError::internal_error(
        format!("upstream \"{name}\" answered with an unexpected result type"),
        None,
    )
}

/// A list result holding one page of `items`, with `nextCursor` when more follow.
macro_rules! paginated {
    ($result:ty, $items:expr, $request:expr) => {{
        let (items, next) = page($items, $request.as_ref())?;
        let mut result = <$result>::with_all_items(items);
        result.next_cursor = next;
        Ok(result)
    }};
}

/// One page of `items` after `cursor` (a decimal offset this gateway handed out).
fn page<T: Clone>(
    items: &[T],
    request: Option<&PaginatedRequestParams>,
) -> Result<(Vec<T>, Option<String>), McpError> {
    let start = match request.and_then(|r| r.cursor.as_deref()) {
        None => 0,
        Some(cursor) => cursor
            .parse::<usize>()
            .ok()
            .filter(|start| *start <= items.len())
            .ok_or_else(|| McpError::invalid_params(format!("invalid cursor {cursor:?}"), None))?,
    };
    let end = (start + PAGE_SIZE).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok((items[start..end].to_vec(), next))
}

/// Names or URIs a client may see and use; a trailing `*` matches a prefix (`fleet_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patterns(pub Vec<String>);

impl Patterns {
    pub fn permits(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => pattern == name,
            })
    }
}

/// What an authenticated HTTP client may see and use over MCP (`[[security.clients]]` `tools`,
/// `prompts` and `resources`), put on the request by the HTTP layer. A kind without patterns,
/// or a request without narrowing: all of that kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Narrowing {
    pub tools: Option<Patterns>,
    /// Prompts by name.
    pub prompts: Option<Patterns>,
    /// Resources by URI and resource templates by URI template.
    pub resources: Option<Patterns>,
}

impl Narrowing {
    /// A client's configured lists (empty: not narrowed); `None` when none narrows anything.
    pub fn from_lists(tools: &[String], prompts: &[String], resources: &[String]) -> Option<Self> {
        let patterns = |list: &[String]| (!list.is_empty()).then(|| Patterns(list.to_vec()));
        let narrowing = Self {
            tools: patterns(tools),
            prompts: patterns(prompts),
            resources: patterns(resources),
        };
        (narrowing != Self::default()).then_some(narrowing)
    }
}

/// Which of a client's lists applies to a kind of entry.
type Kind = fn(&Narrowing) -> Option<&Patterns>;
const TOOLS: Kind = |n| n.tools.as_ref();
const PROMPTS: Kind = |n| n.prompts.as_ref();
const RESOURCES: Kind = |n| n.resources.as_ref();

/// The request's client's patterns for `kind`; `None`: all of that kind. The narrowing comes
/// from the HTTP request this MCP request came in (rmcp keeps its parts in the context).
fn patterns(cx: &RequestContext<RoleServer>, kind: Kind) -> Option<&Patterns> {
    cx.extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Narrowing>())
        .and_then(kind)
}

/// Whether the request's client may see and use the entry `name` of `kind`.
fn permitted(cx: &RequestContext<RoleServer>, kind: Kind, name: &str) -> bool {
    patterns(cx, kind).is_none_or(|patterns| patterns.permits(name))
}

/// The entries of `items` the request's client may see.
fn visible<T: Clone>(
    items: &[T],
    cx: &RequestContext<RoleServer>,
    kind: Kind,
    name: impl Fn(&T) -> &str,
) -> Vec<T> {
    let patterns = patterns(cx, kind);
    items
        .iter()
        .filter(|item| patterns.is_none_or(|p| p.permits(name(item))))
        .cloned()
        .collect()
}

fn not_found(kind: &str, name: &str) -> McpError {
    McpError::invalid_params(format!("unknown {kind} \"{name}\""), None)
}

impl ServerHandler for McpGateway {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_resources()
            .enable_resources_list_changed()
            .enable_resources_subscribe()
            .enable_completions()
            .enable_logging()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("mcp-edge-gateway", crate::version()))
            .with_instructions(
                "Tools of this edge device (device_info, device_sensors, network_links) and of the MCP \
                 servers it federates.",
            )
    }

    async fn on_initialized(&self, cx: NotificationContext<RoleServer>) {
        self.sessions().push(cx.peer);
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = visible(&self.catalog().tools, &cx, TOOLS, |t| &t.name);
        paginated!(ListToolsResult, &tools, request)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let catalog = self.catalog();
        // A tool outside the client's list is answered as if it did not exist.
        let route = catalog
            .tool(&request.name)
            .filter(|_| permitted(&cx, TOOLS, &request.name))
            .ok_or_else(|| not_found("tool", &request.name))?;
        let Some(upstream) = self.upstream(route.owner) else {
            let arguments = request.arguments.as_ref();
            let result = self
                .call_builtin(&route.original, arguments, cx.ct.clone())
                .await
                .ok_or_else(|| not_found("tool", &request.name))?;
            return Ok(result.into());
        };
        let mut params = request;
        params.name = route.original.clone().into();
        // A call to a deferrable upstream carries an idempotency key from the first attempt,
        // so that a replay from the offline queue is recognisably the same call.
        let key = self.deferral(upstream).map(|_| crate::queue::new_id());
        params.meta = key.as_deref().map(deferred::idempotency_meta);
        let arguments = params.arguments.clone();
        let request = ClientRequest::CallToolRequest(Request::new(params));
        let answer = match (self.forward(upstream, request, &cx).await, key) {
            (Err(e), Some(key)) if upstream::is_unreachable(&e) => {
                return self
                    .defer_tool_call(upstream, key, &route.original, arguments, e)
                    .await
                    .map(CallToolResponse::Complete);
            }
            (answer, _) => answer?,
        };
        match answer {
            ServerResult::CallToolResult(result) => Ok(CallToolResponse::Complete(result)),
            ServerResult::InputRequiredResult(result) => {
                Ok(CallToolResponse::InputRequired(result))
            }
            ServerResult::CreateTaskResult(result) => Ok(CallToolResponse::Task(result)),
            _ => Err(unexpected(&upstream.config.name)),
        }
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        cx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let prompts = visible(&self.catalog().prompts, &cx, PROMPTS, |p| &p.name);
        paginated!(ListPromptsResult, &prompts, request)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let catalog = self.catalog();
        let route = catalog
            .prompt(&request.name)
            .filter(|_| permitted(&cx, PROMPTS, &request.name))
            .ok_or_else(|| not_found("prompt", &request.name))?;
        let Some(upstream) = self.upstream(route.owner) else {
            let arguments = request.arguments.as_ref();
            if let (generate::ASK, Some(model)) = (route.original.as_str(), &self.inner.local) {
                return generate::get_prompt(model, arguments, cx.ct.clone())
                    .await
                    .map(Into::into)
                    .map_err(|e| McpError::invalid_params(e, None));
            }
            let prompt = builtin::get_prompt(&self.inner.device, &route.original, arguments)
                .ok_or_else(|| not_found("prompt", &request.name))?;
            return Ok(prompt.into());
        };
        let mut params = request;
        params.name = route.original.clone();
        params.meta = None;
        let request = ClientRequest::GetPromptRequest(Request::new(params));
        match self.forward(upstream, request, &cx).await? {
            ServerResult::GetPromptResult(result) => Ok(GetPromptResponse::Complete(result)),
            ServerResult::InputRequiredResult(result) => {
                Ok(GetPromptResponse::InputRequired(result))
            }
            _ => Err(unexpected(&upstream.config.name)),
        }
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        cx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let resources = visible(&self.catalog().resources, &cx, RESOURCES, |r| &r.uri);
        paginated!(ListResourcesResult, &resources, request)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        cx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let templates = visible(&self.catalog().templates, &cx, RESOURCES, |t| {
            &t.uri_template
        });
        paginated!(ListResourceTemplatesResult, &templates, request)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let resource_not_found = || {
            McpError::invalid_params(
                format!("Resource {} not found", request.uri),
                Some(serde_json::json!({ "uri": request.uri })),
            )
        };
        let owner = self
            .catalog()
            .resource_owner(&request.uri)
            .filter(|_| permitted(&cx, RESOURCES, &request.uri))
            .ok_or_else(resource_not_found)?;
        let Some(upstream) = self.upstream(owner) else {
            let device = &self.inner.device;
            let json = |text: String, uri: &str| {
                rmcp::model::ResourceContents::text(text, uri).with_mime_type("application/json")
            };
            let contents = match (request.uri.as_str(), &device.power, &device.analytics) {
                (power_tools::URI, Some(power), _) => {
                    json(power_tools::read(power), power_tools::URI)
                }
                (analytics_tools::URI, _, Some(analytics)) => {
                    json(analytics_tools::read(analytics), analytics_tools::URI)
                }
                _ => builtin::read_resource(device, &request.uri).ok_or_else(resource_not_found)?,
            };
            return Ok(ReadResourceResult::new(vec![contents]).into());
        };
        let mut params = request;
        params.meta = None;
        let request = ClientRequest::ReadResourceRequest(Request::new(params));
        match self.forward(upstream, request, &cx).await? {
            ServerResult::ReadResourceResult(result) => Ok(ReadResourceResponse::Complete(result)),
            ServerResult::InputRequiredResult(result) => {
                Ok(ReadResourceResponse::InputRequired(result))
            }
            _ => Err(unexpected(&upstream.config.name)),
        }
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let catalog = self.catalog();
        let (owner, mut params) = match &request.r#ref {
            Reference::Prompt(prompt) => {
                let route = catalog
                    .prompt(&prompt.name)
                    .filter(|_| permitted(&cx, PROMPTS, &prompt.name))
                    .ok_or_else(|| not_found("prompt", &prompt.name))?;
                if route.owner == Owner::Builtin {
                    let info = builtin::complete_prompt_argument(
                        &route.original,
                        &request.argument.name,
                        &request.argument.value,
                    )
                    .unwrap_or_default();
                    return Ok(CompleteResult::new(info));
                }
                let mut params = request.clone();
                params.r#ref = Reference::for_prompt(route.original.clone());
                (route.owner, params)
            }
            Reference::Resource(template) => match catalog
                .template_owner(&template.uri)
                .filter(|_| permitted(&cx, RESOURCES, &template.uri))
            {
                Some(owner) => (owner, request.clone()),
                // A template nobody owns has nothing to complete.
                None => return Ok(CompleteResult::new(CompletionInfo::default())),
            },
            _ => return Ok(CompleteResult::new(CompletionInfo::default())),
        };
        let Some(upstream) = self.upstream(owner) else {
            return Ok(CompleteResult::new(CompletionInfo::default()));
        };
        params.meta = None;
        let request = ClientRequest::CompleteRequest(Request::new(params));
        match self.forward(upstream, request, &cx).await? {
            ServerResult::CompleteResult(result) => Ok(result),
            _ => Err(unexpected(&upstream.config.name)),
        }
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let uri = request.uri.clone();
        self.forward_subscription(
            &uri,
            ClientRequest::SubscribeRequest(Request::new(request)),
            &cx,
        )
        .await?;
        let mut subscriptions = self
            .inner
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        subscriptions.entry(uri).or_default().push(cx.peer);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let uri = request.uri.clone();
        self.forward_subscription(
            &uri,
            ClientRequest::UnsubscribeRequest(Request::new(request)),
            &cx,
        )
        .await?;
        let mut subscriptions = self
            .inner
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(peers) = subscriptions.get_mut(&uri) {
            // Sessions have no identity to compare: drop the closed ones and one open one.
            peers.retain(|peer| !peer.is_transport_closed());
            peers.pop();
        }
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.clone())
    }

    /// A 2026-07-28 client's `subscriptions/listen`: list changes of the merged catalog, and
    /// updates of the resources it names (their upstreams are asked to watch them).
    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let uris = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        let catalog = self.catalog();
        let watched: Vec<(Arc<Upstream>, String)> = uris
            .iter()
            .filter_map(|uri| {
                Some((
                    Arc::clone(self.upstream(catalog.resource_owner(uri)?)?),
                    uri.clone(),
                ))
            })
            .filter(|(upstream, _)| upstream.is_modern())
            .collect();
        for (upstream, uri) in &watched {
            upstream.watch_resource(uri, true);
        }
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(context.sink().clone());
        context.cancelled().await;
        for (upstream, uri) in &watched {
            upstream.watch_resource(uri, false);
        }
        let id = context.sink().id().clone();
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|s| s.id() != &id);
        Ok(())
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        *self
            .inner
            .log_level
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(request.level);
        for upstream in &self.inner.upstreams {
            if let Ok(peer) = upstream.peer() {
                #[allow(deprecated)] // logging/setLevel is how 2025-11-25 upstreams take a level.
                if let Err(e) = peer.set_level(request.clone()).await {
                    info!(upstream = %upstream.config.name, error = %e, "upstream did not take the log level");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(cursor: Option<&str>) -> PaginatedRequestParams {
        PaginatedRequestParams::default().with_cursor(cursor.map(str::to_owned))
    }

    #[test]
    fn pages_follow_the_cursor_to_the_end() {
        let items: Vec<usize> = (0..250).collect();
        let (first, next) = page(&items, None).unwrap();
        assert_eq!(
            (first.len(), first[0], next.as_deref()),
            (100, 0, Some("100"))
        );
        let (second, next) = page(&items, Some(&cursor(next.as_deref()))).unwrap();
        assert_eq!((second[0], next.as_deref()), (100, Some("200")));
        let (last, next) = page(&items, Some(&cursor(next.as_deref()))).unwrap();
        assert_eq!((last.len(), next), (50, None));
    }

    #[test]
    fn a_foreign_cursor_is_invalid_params() {
        let items = [1, 2, 3];
        for bad in ["x", "4", "-1"] {
            let error = page(&items, Some(&cursor(Some(bad)))).unwrap_err();
            assert_eq!(error.code, rmcp::model::ErrorCode::INVALID_PARAMS, "{bad}");
        }
    }
}
