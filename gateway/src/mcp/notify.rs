//! What flows from upstreams back to clients outside a request: catalog changes, log messages,
//! resource updates, and the health line that summarises the upstreams.

use std::sync::Arc;

use rmcp::model::{ClientRequest, LoggingLevel, ServerNotification};
use rmcp::service::{Peer, RequestContext, RoleServer, SubscriptionSendError, SubscriptionSink};
use rmcp::ErrorData as McpError;

use super::upstream::{Downstream, Relayed, Status, Upstream};
use super::McpGateway;

impl McpGateway {
    pub(super) async fn on_upstream_change(&self) {
        let changed = self.rebuild_catalog();
        self.report_health();
        if !changed {
            return;
        }
        let sessions = self.sessions().clone();
        for peer in sessions {
            let _ = peer.notify_tool_list_changed().await;
            let _ = peer.notify_prompt_list_changed().await;
            let _ = peer.notify_resource_list_changed().await;
        }
        self.notify_listeners(&[
            ServerNotification::ToolListChangedNotification(Default::default()),
            ServerNotification::PromptListChangedNotification(Default::default()),
            ServerNotification::ResourceListChangedNotification(Default::default()),
        ])
        .await;
    }

    /// Sends each notification on every open listen stream whose filter accepts it, and forgets
    /// the streams that have ended.
    pub(super) async fn notify_listeners(&self, notifications: &[ServerNotification]) {
        let listeners: Vec<SubscriptionSink> = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut ended = Vec::new();
        for sink in &listeners {
            for notification in notifications {
                if let Err(SubscriptionSendError::SubscriptionClosed) =
                    sink.send(notification.clone()).await
                {
                    ended.push(sink.id().clone());
                    break;
                }
            }
        }
        if !ended.is_empty() {
            self.inner
                .listeners
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|s| !ended.contains(s.id()));
        }
    }

    pub(super) fn report_health(&self) {
        let statuses: Vec<String> = self
            .inner
            .upstreams
            .iter()
            .map(|u| match u.status() {
                Status::Ready => format!("{} ready", u.config.name),
                Status::Connecting { attempt, .. } => {
                    format!("{} reconnecting (attempt {attempt})", u.config.name)
                }
            })
            .collect();
        let catalog = self.catalog();
        let detail = format!(
            "{} tools, {} prompts, {} resources; upstreams: {}",
            catalog.tools.len(),
            catalog.prompts.len(),
            catalog.resources.len(),
            if statuses.is_empty() {
                "none".to_owned()
            } else {
                statuses.join(", ")
            }
        );
        // Serving goes on while an upstream reconnects: only its own calls fail meanwhile.
        self.inner.health.set("mcp", true, detail);
    }

    /// Passes an upstream's notifications on: log messages to the client whose call is in
    /// flight (at or above the level it asked for), resource updates to the clients subscribed
    /// to that resource.
    pub(super) fn relay_notifications(&self, upstream: &Arc<Upstream>) {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Relayed>();
        *upstream
            .events
            .relay
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(sender);
        let gateway = self.clone();
        let upstream = Arc::clone(upstream);
        tokio::spawn(async move {
            while let Some(message) = receiver.recv().await {
                match message {
                    Relayed::Log(message) => {
                        let downstream = upstream
                            .events
                            .downstream
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .clone();
                        let Some(Downstream {
                            peer,
                            log_level: Some(wanted),
                        }) = downstream
                        else {
                            continue;
                        };
                        if severity(message.level) >= severity(wanted) {
                            let _ = peer.notify_logging_message(message).await;
                        }
                    }
                    Relayed::ResourceUpdated(update) => {
                        for peer in gateway.subscribers(&update.uri) {
                            let _ = peer.notify_resource_updated(update.clone()).await;
                        }
                        let notification = ServerNotification::ResourceUpdatedNotification(
                            rmcp::model::Notification::new(update),
                        );
                        gateway.notify_listeners(&[notification]).await;
                    }
                }
            }
        });
    }

    /// Open sessions subscribed to `uri`.
    pub(super) fn subscribers(&self, uri: &str) -> Vec<Peer<RoleServer>> {
        let mut subscriptions = self
            .inner
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let peers = subscriptions.entry(uri.to_owned()).or_default();
        peers.retain(|peer| !peer.is_transport_closed());
        peers.clone()
    }

    /// Forwards a subscribe or unsubscribe for `uri` to its owner.
    pub(super) async fn forward_subscription(
        &self,
        uri: &str,
        request: ClientRequest,
        cx: &RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let owner = self
            .catalog()
            .resource_owner(uri)
            .filter(|_| super::permitted(cx, super::RESOURCES, uri))
            .ok_or_else(|| {
                McpError::invalid_params(
                    format!("Resource {uri} not found"),
                    Some(serde_json::json!({ "uri": uri })),
                )
            })?;
        if uri == super::analytics_tools::URI && self.inner.device.analytics.is_some() {
            // Its updates come from this gateway's own analytics.
            return Ok(());
        }
        let Some(upstream) = self.upstream(owner) else {
            return Err(McpError::invalid_params(
                format!("{uri} is a built-in resource: it changes continuously and is read on demand, not subscribed to"),
                None,
            ));
        };
        // A 2026-07-28 upstream has no resources/subscribe: its listen stream carries the
        // updates, so the URI joins (or leaves) that stream's filter instead.
        if upstream.is_modern() {
            let subscribe = matches!(request, ClientRequest::SubscribeRequest(_));
            upstream.watch_resource(uri, subscribe);
            return Ok(());
        }
        self.forward(upstream, request, cx).await.map(drop)
    }
}

impl McpGateway {
    /// Whether clients asked for log messages of `level` (`logging/setLevel` at or below it).
    pub(super) fn logs(&self, level: LoggingLevel) -> bool {
        self.inner
            .log_level
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|wanted| severity(level) >= severity(wanted))
    }
}

/// RFC 5424 order, least severe first.
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}
