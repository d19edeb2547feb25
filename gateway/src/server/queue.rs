//! The offline queue over HTTP: `GET /v1/queue/status`, `POST /v1/queue/sync`,
//! `GET /v1/queue/{id}`; the deferral of a completion the cloud cannot take now (202 with the
//! entry's id, only once the entry is on disk); and the replay of deferred completions when
//! the queue syncs.

use futures::future::BoxFuture;
use http::{header, HeaderValue, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::response::{json_response, ApiError, Body};
use super::v1::{self, Api};
use super::Shared;
use crate::analytics::alert::ALERT;
use crate::analytics::AlertSender;
use crate::mcp::{McpGateway, TOOL_CALL};
use crate::queue::{Delivery, OfflineQueue, Outcome, Pending, StoreError};
use crate::router::{Backend, CompletionError, CompletionRequest, Completions};
use crate::telemetry::Metrics;

/// Entry kind of a deferred completion.
pub(super) const COMPLETION: &str = "completion";

/// What a deferred completion keeps: the request and the format its answer takes.
#[derive(Debug, Serialize, Deserialize)]
struct DeferredCompletion {
    api: Api,
    request: CompletionRequest,
}

/// `GET /v1/queue/status`.
pub(super) async fn status(queue: &OfflineQueue) -> Response<Body> {
    match queue.status().await {
        Ok(status) => json_response(StatusCode::OK, &json!(status)),
        Err(e) => store_error(e, "").into_response(),
    }
}

/// `POST /v1/queue/sync`: one round now; answers with what it did.
pub(super) async fn sync(queue: &OfflineQueue) -> Response<Body> {
    match queue.sync_offline_queue().await {
        Ok(report) => json_response(StatusCode::OK, &json!(report)),
        Err(e) => store_error(e, "").into_response(),
    }
}

/// `GET /v1/queue/{id}`: the entry's state, and its result once delivered.
pub(super) async fn entry(queue: &OfflineQueue, id: &str) -> Response<Body> {
    match queue.entry(id).await {
        Ok(Some(entry)) => json_response(StatusCode::OK, &json!(entry)),
        Ok(None) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no queued entry {id:?} (delivered entries are kept offline.keep_results_hours)"
            ),
        )
        .into_response(),
        Err(e) => store_error(e, "").into_response(),
    }
}

/// Stores a completion the cloud could not take (`why`) and answers 202 with its id, or the
/// queue's refusal.
pub(super) async fn defer(
    shared: &Shared,
    request: CompletionRequest,
    api: Api,
    why: &str,
) -> Response<Body> {
    let payload = json!(DeferredCompletion { api, request });
    let id = match shared
        .queue
        .queue_for_sync(COMPLETION, "cloud", payload)
        .await
    {
        Ok(id) => id,
        Err(e) => {
            let retry_after = shared.queue.sync_interval();
            let mut response = store_error(e, why).into_response();
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                if let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            return response;
        }
    };
    let location = format!("/v1/queue/{id}");
    let mut response = json_response(
        StatusCode::ACCEPTED,
        &json!({
            "id": id,
            "object": "mcp_edge.queued",
            "status": "queued",
            "status_url": location,
            "reason": format!("deferred until the cloud can be reached: {why}"),
        }),
    );
    let headers = response.headers_mut();
    headers.insert("x-mcp-edge-backend", HeaderValue::from_static("queue"));
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    response
}

fn store_error(e: StoreError, why: &str) -> ApiError {
    let because = if why.is_empty() {
        String::new()
    } else {
        format!(" (the request could not be answered now: {why})")
    };
    match e {
        StoreError::Full(_) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
            format!("{e}{because}; try again after the next sync"),
        ),
        StoreError::DiskFull(_) => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            format!("{e}{because}; free space on that file system"),
        ),
        StoreError::Database { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "queue_unavailable",
            format!("{e}{because}"),
        ),
    }
}

/// Replays queued entries: deferred completions go to the cloud (only) with the entry's id as
/// `Idempotency-Key`, the answer stored in the format the caller asked for; deferred tool
/// calls go to their upstream with the id in `_meta`; anomaly alerts are POSTed again to the
/// URL they were meant for.
#[derive(Debug)]
pub(super) struct Replay {
    pub completions: Completions,
    pub mcp: McpGateway,
    /// `analytics.alert_url`'s sender (its client and token).
    pub alerts: Option<AlertSender>,
    pub metrics: std::sync::Arc<Metrics>,
}

impl Delivery for Replay {
    fn deliver(&self, entry: Pending) -> BoxFuture<'static, Outcome> {
        let completions = self.completions.clone();
        let metrics = std::sync::Arc::clone(&self.metrics);
        let mcp = self.mcp.clone();
        let alerts = self.alerts.clone();
        Box::pin(async move {
            if entry.kind == ALERT {
                return match alerts {
                    Some(sender) => sender.post(&entry.target, &entry.id, &entry.payload).await,
                    // Not retried: it would hold up every entry behind it until a restart.
                    None => Outcome::Failed(
                        "analytics.alert_url is no longer configured; the alert is kept as failed"
                            .into(),
                    ),
                };
            }
            if entry.kind == TOOL_CALL {
                return mcp
                    .replay_tool_call(&entry.target, entry.payload, &entry.id)
                    .await;
            }
            if entry.kind != COMPLETION {
                return Outcome::Failed(format!("unknown entry kind {:?}", entry.kind));
            }
            let deferred: DeferredCompletion = match serde_json::from_value(entry.payload) {
                Ok(deferred) => deferred,
                Err(e) => return Outcome::Failed(format!("stored request is unreadable: {e}")),
            };
            let request = CompletionRequest {
                backend: Some(Backend::Cloud),
                idempotency_key: Some(entry.id),
                ..deferred.request
            };
            match v1::run_to_end(&completions, &metrics, request, deferred.api).await {
                Ok(answer) => Outcome::Delivered(answer),
                Err(
                    e @ (CompletionError::Invalid(_)
                    | CompletionError::Refused(_)
                    | CompletionError::NoBackend(_)),
                ) => Outcome::Failed(e.to_string()),
                Err(e) => Outcome::Retry(e.to_string()),
            }
        })
    }
}
