//! Tool calls to a deferrable upstream that cannot be reached: stored in the offline queue
//! (the caller gets a result naming the entry), replayed by the queue's sync when the upstream
//! is back, under the idempotency key the first attempt already carried.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientRequest, ContentBlock, JsonObject, Request,
    RequestMetaObject, ServerResult,
};
use rmcp::service::PeerRequestOptions;
use rmcp::ErrorData as McpError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::info;

use super::upstream::Upstream;
use super::McpGateway;
use crate::queue::{OfflineQueue, Outcome, StoreError};

/// Entry kind of a deferred tool call.
pub const TOOL_CALL: &str = "tool_call";

/// The `_meta` key that carries a call's idempotency key to the upstream. An upstream that
/// sees the same key twice should answer the second call as it answered the first.
pub const IDEMPOTENCY_META: &str = "io.mcp-edge/idempotency-key";

/// What a deferred tool call keeps.
#[derive(Debug, Serialize, Deserialize)]
struct DeferredCall {
    /// The tool's name at the upstream (without the gateway's prefix).
    tool: String,
    arguments: Option<JsonObject>,
}

/// `_meta` holding just the idempotency key.
pub fn idempotency_meta(key: &str) -> RequestMetaObject {
    serde_json::from_value(json!({ IDEMPOTENCY_META: key })).unwrap_or_default()
}

impl McpGateway {
    /// The queue, when calls to `upstream` may be deferred.
    pub(super) fn deferral(&self, upstream: &Upstream) -> Option<&OfflineQueue> {
        self.inner
            .device
            .queue
            .as_ref()
            .filter(|_| upstream.config.deferrable)
    }

    /// Stores a call `upstream` could not take (`why`) under `key`, and answers with a result
    /// that names the entry; a full queue or disk is the caller's error.
    pub(super) async fn defer_tool_call(
        &self,
        upstream: &Upstream,
        key: String,
        tool: &str,
        arguments: Option<JsonObject>,
        why: McpError,
    ) -> Result<CallToolResult, McpError> {
        let Some(queue) = self.deferral(upstream) else {
            return Err(why);
        };
        let name = &upstream.config.name;
        let payload = json!(DeferredCall {
            tool: tool.to_owned(),
            arguments,
        });
        let id = queue
            .queue_for_sync_as(key, TOOL_CALL, name, payload)
            .await
            .map_err(|e| {
                let message = format!("{} ({e}; the call was not queued)", why.message);
                match e {
                    StoreError::Full(_) | StoreError::DiskFull(_) => {
                        McpError::internal_error(message, Some(json!({ "queue": "full" })))
                    }
                    StoreError::Database { .. } => McpError::internal_error(message, None),
                }
            })?;
        info!(upstream = %name, tool, %id, "upstream unreachable; tool call queued for sync");
        let answer = json!({
            "queued": true,
            "id": id,
            "upstream": name,
            "status_url": format!("/v1/queue/{id}"),
            "reason": why.message,
        });
        let mut result = CallToolResult::success(vec![ContentBlock::text(format!(
            "Upstream \"{name}\" cannot be reached now; the call is queued as {id} and will be \
             delivered when it is back. Its result: the queue_entry tool with this id."
        ))]);
        result.structured_content = Some(answer);
        Ok(result)
    }

    /// Replays a queued tool call to its upstream under the entry's id as idempotency key.
    pub(crate) async fn replay_tool_call(
        &self,
        target: &str,
        payload: serde_json::Value,
        key: &str,
    ) -> Outcome {
        let Some(upstream) = self
            .inner
            .upstreams
            .iter()
            .find(|u| u.config.name == target)
            .map(Arc::clone)
        else {
            return Outcome::Failed(format!(
                "no upstream named \"{target}\" is configured any more"
            ));
        };
        let call: DeferredCall = match serde_json::from_value(payload) {
            Ok(call) => call,
            Err(e) => return Outcome::Failed(format!("stored call is unreadable: {e}")),
        };
        let peer = match upstream.peer() {
            Ok(peer) => peer,
            Err(e) => return Outcome::Retry(e.message.into_owned()),
        };
        let mut params = CallToolRequestParams::new(call.tool);
        params.arguments = call.arguments;
        let request = ClientRequest::CallToolRequest(Request::new(params));
        let options = PeerRequestOptions::with_timeout(self.call_timeout(&upstream))
            .with_meta(idempotency_meta(key));
        let answer = match peer.send_cancellable_request(request, options).await {
            Ok(handle) => handle.await_response().await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(ServerResult::CallToolResult(result)) => Outcome::Delivered(json!(result)),
            Ok(ServerResult::InputRequiredResult(_)) => Outcome::Failed(
                "the upstream asked for input; nobody is there to give it to a queued call".into(),
            ),
            Ok(_) => Outcome::Failed("the upstream answered with an unexpected result type".into()),
            // The upstream's own verdict on the call: sending it again would not change it.
            Err(rmcp::ServiceError::McpError(e)) => Outcome::Failed(e.message.into_owned()),
            Err(e) => {
                upstream.request_failed(&e);
                Outcome::Retry(format!("upstream \"{target}\": {e}"))
            }
        }
    }
}
