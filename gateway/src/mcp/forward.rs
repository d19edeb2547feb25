//! Forwarding a request to its upstream: progress relayed, cancellation and timeouts passed on,
//! and `input_required` answers bridged between protocol revisions (see docs/MCP.md).

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CancelledNotificationParam, ClientRequest, InputRequiredResult, InputResponses, LoggingLevel,
    RequestMetaObject, ResultType, ServerRequest, ServerResult,
};
use rmcp::service::{Peer, PeerRequestOptions, RequestContext, RoleClient, RoleServer};
use rmcp::ErrorData as McpError;

use super::progress;
use super::upstream::{speaks_2026, unreachable, Downstream, Upstream};
use super::McpGateway;

impl McpGateway {
    /// Sends `request` to an upstream and returns its answer. When the upstream answers with
    /// `input_required` (2026-07-28 multi-round calls) and the client is on 2025-11-25, the
    /// gateway asks the client itself, with the server-to-client requests that client
    /// understands, and retries upstream with the answers; a 2026-07-28 client gets the
    /// `input_required` result and answers it directly.
    pub(super) async fn forward(
        &self,
        upstream: &Arc<Upstream>,
        mut request: ClientRequest,
        cx: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, McpError> {
        for _ in 0..MAX_INPUT_ROUNDS {
            let result = self.forward_once(upstream, request.clone(), cx).await?;
            let ServerResult::InputRequiredResult(pending) = &result else {
                return Ok(result);
            };
            if client_is_modern(cx) {
                return Ok(result);
            }
            let responses = ask_client(pending, cx).await?;
            request = with_inputs(request, responses, pending.request_state.clone())?;
        }
        Err(McpError::internal_error(
            format!(
                "upstream \"{}\" still wanted input after {MAX_INPUT_ROUNDS} rounds",
                upstream.config.name
            ),
            None,
        ))
    }

    /// The `_meta` a 2026-07-28 upstream needs to treat the request as the client's own: the
    /// client's capabilities and log level, from its request (2026-07-28 clients) or from its
    /// session (2025-11-25 clients).
    fn upstream_meta(&self, cx: &RequestContext<RoleServer>) -> RequestMetaObject {
        if client_is_modern(cx) {
            return cx.meta.clone();
        }
        let mut meta = RequestMetaObject::default();
        if let Some(info) = cx.peer.peer_info() {
            meta.set_client_capabilities(info.capabilities.clone());
        }
        if let Some(level) = *self
            .inner
            .log_level
            .lock()
            .unwrap_or_else(|p| p.into_inner())
        {
            meta.set_log_level(level);
        }
        meta
    }

    async fn forward_once(
        &self,
        upstream: &Arc<Upstream>,
        request: ClientRequest,
        cx: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, McpError> {
        let peer = upstream.peer()?;
        let log_level = if client_is_modern(cx) {
            cx.meta.log_level()
        } else {
            Some(
                self.inner
                    .log_level
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .unwrap_or(LoggingLevel::Info),
            )
        };
        *upstream
            .events
            .downstream
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Downstream {
            peer: cx.peer.clone(),
            log_level,
        });
        let options = if speaks_2026(&peer) {
            PeerRequestOptions::no_options().with_meta(self.upstream_meta(cx))
        } else {
            PeerRequestOptions::no_options()
        };
        let handle = peer
            .send_cancellable_request(request, options)
            .await
            .map_err(|e| upstream_error(upstream, e))?;
        // Subscribed before anything is awaited: the upstream's first notifications are kept.
        let (route, progress) = upstream
            .events
            .progress
            .subscribe(handle.progress_token.clone());
        let relay = cx
            .meta
            .get_progress_token()
            .map(|token| tokio::spawn(progress::relay(progress, cx.peer.clone(), token)));
        let timeout = self.call_timeout(upstream);
        let outcome = self
            .await_answer(upstream, &peer, handle, timeout, cx)
            .await;
        // Every notification sent before the answer is queued: the client gets them first.
        drop(route);
        if let Some(relay) = relay {
            let _ = relay.await;
        }
        outcome.map(mark_complete)
    }

    async fn await_answer(
        &self,
        upstream: &Upstream,
        peer: &Peer<RoleClient>,
        handle: rmcp::service::RequestHandle<RoleClient>,
        timeout: Duration,
        cx: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, McpError> {
        let upstream_id = handle.id.clone();
        tokio::select! {
                    answer = tokio::time::timeout(timeout, handle.await_response()) => match answer {
                        Ok(result) => result.map_err(|e| upstream_error(upstream, e)),
                        Err(_) => {
                            cancel(peer, upstream_id, "timed out at the gateway").await;
                            Err(McpError::internal_error(
                                format!("upstream \"{}\" did not answer within {} ms", upstream.config.name, timeout.as_millis()),
                                None,
                            ))
                        }
                    },
        _ = cx.ct.cancelled() => {
                        cancel(peer, upstream_id, "cancelled by the client").await;
                        Err(McpError::internal_error("the request was cancelled", None))
                    }
                }
    }

    /// Timeout of one forwarded call: the upstream's own, else the gateway's request timeout.
    pub(super) fn call_timeout(&self, upstream: &Upstream) -> Duration {
        if upstream.config.timeout_ms > 0 {
            return Duration::from_millis(upstream.config.timeout_ms);
        }
        let config = self
            .inner
            .device
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner());
        Duration::from_millis(config.gateway.request_timeout_ms)
    }
}

/// Most rounds of `input_required` answers the gateway drives for one 2025-11-25 call.
const MAX_INPUT_ROUNDS: usize = 10;

fn client_is_modern(cx: &RequestContext<RoleServer>) -> bool {
    cx.meta
        .protocol_version()
        .is_some_and(|version| !version.has_initialize())
}

/// Asks a 2025-11-25 client for each input an upstream requested, as server-to-client requests.
async fn ask_client(
    pending: &InputRequiredResult,
    cx: &RequestContext<RoleServer>,
) -> Result<InputResponses, McpError> {
    let mut responses = InputResponses::new();
    for (key, input) in pending.input_requests.iter().flatten() {
        let request: ServerRequest = serde_json::to_value(input)
            .and_then(serde_json::from_value)
            .map_err(|e| McpError::internal_error(format!("input request {key}: {e}"), None))?;
        let answer = cx.peer.send_request(request).await.map_err(|e| match e {
            rmcp::ServiceError::McpError(error) => error,
            other => McpError::internal_error(
                format!("asking the client for {key} failed: {other}"),
                None,
            ),
        })?;
        let answer = serde_json::to_value(answer)
            .map_err(|e| McpError::internal_error(e.to_string(), None))?;
        responses.insert(key.clone(), answer);
    }
    Ok(responses)
}

/// The same request with the client's answers and the upstream's state attached.
fn with_inputs(
    request: ClientRequest,
    responses: InputResponses,
    state: Option<String>,
) -> Result<ClientRequest, McpError> {
    Ok(match request {
        ClientRequest::CallToolRequest(mut r) => {
            r.params.input_responses = Some(responses);
            r.params.request_state = state;
            ClientRequest::CallToolRequest(r)
        }
        ClientRequest::GetPromptRequest(mut r) => {
            r.params.input_responses = Some(responses);
            r.params.request_state = state;
            ClientRequest::GetPromptRequest(r)
        }
        ClientRequest::ReadResourceRequest(mut r) => {
            r.params.input_responses = Some(responses);
            r.params.request_state = state;
            ClientRequest::ReadResourceRequest(r)
        }
        _ => {
            return Err(McpError::internal_error(
                "an upstream asked for input on a request that cannot carry it",
                None,
            ))
        }
    })
}

/// Results from an upstream on 2025-11-25 carry no `resultType`; 2026-07-28 clients require it.
/// A forwarded answer is complete unless the upstream said otherwise (the SDK drops the field
/// again for older clients).
fn mark_complete(mut result: ServerResult) -> ServerResult {
    let result_type = match &mut result {
        ServerResult::CallToolResult(r) => &mut r.result_type,
        ServerResult::GetPromptResult(r) => &mut r.result_type,
        ServerResult::ReadResourceResult(r) => &mut r.result_type,
        ServerResult::CompleteResult(r) => &mut r.result_type,
        _ => return result,
    };
    result_type.get_or_insert(ResultType::COMPLETE);
    result
}

async fn cancel(peer: &Peer<RoleClient>, id: rmcp::model::RequestId, reason: &str) {
    let _ = peer
        .notify_cancelled(CancelledNotificationParam::new(
            Some(id),
            Some(reason.to_owned()),
        ))
        .await;
}

/// The client's error for a failed request (and the supervisor told, see
/// [`Upstream::request_failed`]).
fn upstream_error(upstream: &Upstream, error: rmcp::ServiceError) -> McpError {
    upstream.request_failed(&error);
    let name = &upstream.config.name;
    match error {
        // The upstream's own JSON-RPC error goes to the client unchanged.
        rmcp::ServiceError::McpError(error) => error,
        e @ (rmcp::ServiceError::TransportSend(_) | rmcp::ServiceError::TransportClosed)
            if e.auth_challenge().is_none() =>
        {
            unreachable(format!("upstream \"{name}\" cannot be reached: {e}"))
        }
        other => McpError::internal_error(format!("upstream \"{name}\" failed: {other}"), None),
    }
}
