//! One request, top to bottom: deadline → host check → body limit → route → metrics.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;

use super::response::{json_response, with_type, ApiError, Body};
use super::{attestation, auth, power, queue, update, v1, LiveSettings, Shared};
use crate::memory::{Budget, Reservation};
use crate::telemetry;

/// The routes the gateway knows, as they appear in metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    Health,
    Metrics,
    Mcp,
    ChatCompletions,
    McpCompletions,
    Models,
    QueueStatus,
    QueueSync,
    QueueEntry,
    Attestation,
    Power,
    Update,
    Memory,
    ResourceMetadata,
    Unknown,
}

impl Route {
    pub(super) fn of(path: &str) -> Self {
        match path {
            "/health" => Route::Health,
            "/metrics" => Route::Metrics,
            "/mcp" => Route::Mcp,
            "/v1/chat/completions" => Route::ChatCompletions,
            "/v1/mcp/completions" => Route::McpCompletions,
            "/v1/models" => Route::Models,
            "/v1/queue/status" => Route::QueueStatus,
            "/v1/queue/sync" => Route::QueueSync,
            "/v1/attestation" => Route::Attestation,
            "/v1/power" => Route::Power,
            "/v1/update" => Route::Update,
            "/v1/memory" => Route::Memory,
            p if p.starts_with("/.well-known/oauth-protected-resource") => Route::ResourceMetadata,
            p if entry_id(p).is_some() => Route::QueueEntry,
            _ => Route::Unknown,
        }
    }

    /// The scope a client needs for this route (`None`: open to anyone who reaches it).
    pub(super) fn scope(self, method: &Method) -> auth::Scope {
        match self {
            Route::Power if method == Method::PUT => Some("admin"),
            Route::Power => Some("power"),
            Route::Health | Route::ResourceMetadata | Route::Unknown => None,
            Route::Metrics | Route::Memory => Some("metrics"),
            Route::Mcp => Some("mcp"),
            Route::ChatCompletions | Route::McpCompletions | Route::Models => Some("completions"),
            Route::QueueStatus | Route::QueueEntry => Some("queue"),
            Route::QueueSync | Route::Update => Some("admin"),
            Route::Attestation => Some("attestation"),
        }
    }

    /// Whether a request on this route is work that ends an idle spell; health checks,
    /// scrapes and power readings are not.
    fn is_work(self, method: &Method) -> bool {
        match self {
            Route::Health | Route::Metrics | Route::Memory | Route::ResourceMetadata => false,
            Route::Power => method == Method::PUT,
            _ => true,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Route::Health => "/health",
            Route::Metrics => "/metrics",
            Route::Mcp => "/mcp",
            Route::ChatCompletions => "/v1/chat/completions",
            Route::McpCompletions => "/v1/mcp/completions",
            Route::Models => "/v1/models",
            Route::QueueStatus => "/v1/queue/status",
            Route::QueueSync => "/v1/queue/sync",
            Route::QueueEntry => "/v1/queue/{id}",
            Route::Attestation => "/v1/attestation",
            Route::Power => "/v1/power",
            Route::Update => "/v1/update",
            Route::Memory => "/v1/memory",
            Route::ResourceMetadata => "/.well-known/oauth-protected-resource",
            Route::Unknown => "other",
        }
    }
}

/// Serves one request; never fails (every problem becomes a JSON error response).
pub(super) async fn serve(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let live = shared.live();
    let route = Route::of(request.uri().path());
    let method = method_label(request.method());
    let response = respond(&shared, &live, route, request, started).await;
    let response = hold_while_sent(&shared.memory.http_buffers, response);
    shared.metrics.observe_request(
        route.label(),
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    Ok(response)
}

async fn respond(
    shared: &Shared,
    live: &LiveSettings,
    route: Route,
    request: Request<Incoming>,
    started: Instant,
) -> Response<Body> {
    let deadline = tokio::time::Instant::from_std(started + live.request_timeout);
    if let Err(e) = live.allowed_hosts.check(request.uri(), request.headers()) {
        return e.into_response();
    }
    let mut request = request;
    match live
        .clients
        .admit(request.headers(), route.scope(request.method()))
        .await
    {
        Ok(Some(admitted)) => {
            if let Some(narrowing) = admitted.narrowing {
                request.extensions_mut().insert(narrowing);
            }
        }
        Ok(None) => {}
        Err((error, headers)) => {
            let mut response = error.into_response();
            response.headers_mut().extend(headers);
            return response;
        }
    }
    // Only an admitted request ends an idle spell: a stranger cannot keep the device awake.
    if route.is_work(request.method()) {
        shared.power.touch();
    }
    if route == Route::Mcp {
        return mcp(shared, live, request, deadline).await;
    }
    let (parts, body) = request.into_parts();
    // The body is read in full before routing, so every route gets the same size limit and the
    // connection stays usable for the next request whatever the answer. The deadline bounds
    // reading it, and a completion up to its first token (all of it when not streamed).
    let read = read_body(
        body,
        &parts.headers,
        live.max_body_bytes,
        &shared.memory.http_buffers,
    );
    match tokio::time::timeout_at(deadline, read).await {
        // The body's memory is held until the answer is ready.
        Ok(Ok((body, _held))) => match (route, &parts.method) {
            (Route::ChatCompletions, &Method::POST) => {
                v1::chat_completions(shared, &body, deadline).await
            }
            (Route::McpCompletions, &Method::POST) => {
                v1::mcp_completions(shared, &body, deadline).await
            }
            (Route::QueueStatus, &Method::GET) => queue::status(&shared.queue).await,
            (Route::QueueSync, &Method::POST) => queue::sync(&shared.queue).await,
            (Route::QueueEntry, &Method::GET) => {
                let id = entry_id(parts.uri.path()).unwrap_or_default();
                queue::entry(&shared.queue, id).await
            }
            (Route::Attestation, &Method::GET) => {
                attestation::attestation(&shared.attestation, parts.uri.query()).await
            }
            (Route::Power, &Method::GET) => power::status(&shared.power),
            (Route::Power, &Method::PUT) => power::set(&shared.power, &body),
            (Route::Update, &Method::GET) => update::status(&shared.update).await,
            (Route::Memory, &Method::GET) => {
                json_response(StatusCode::OK, &json!(shared.memory.stats()))
            }
            _ => route_request(shared, live, route, &parts.method, parts.uri.path()),
        },
        Ok(Err(e)) => e.into_response(),
        Err(_) => request_timeout(live),
    }
}

/// The id in `/v1/queue/{id}`: the shape the queue hands out (`q-` and hex digits).
fn entry_id(path: &str) -> Option<&str> {
    let id = path.strip_prefix("/v1/queue/")?;
    let hex = id.strip_prefix("q-")?;
    (!hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

fn request_timeout(live: &LiveSettings) -> Response<Body> {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "the request did not arrive within gateway.request_timeout_ms ({} ms)",
            live.request_timeout.as_millis()
        ),
    )
    .into_response()
}

fn route_request(
    shared: &Shared,
    live: &LiveSettings,
    route: Route,
    method: &Method,
    path: &str,
) -> Response<Body> {
    match (route, method) {
        (Route::Health, &Method::GET | &Method::HEAD) => health(shared),
        (Route::ResourceMetadata, &Method::GET | &Method::HEAD) => match live.clients.oauth() {
            Some(oauth) if oauth.is_metadata_path(path) => {
                json_response(StatusCode::OK, &oauth.metadata())
            }
            _ => not_found("no OAuth protected-resource metadata here (security.oauth is not set)"),
        },
        (Route::Metrics, &Method::GET | &Method::HEAD) if live.metrics_enabled => with_type(
            StatusCode::OK,
            telemetry::CONTENT_TYPE,
            shared.metrics.encode(),
        ),
        (Route::Metrics, _) if !live.metrics_enabled => {
            not_found("/metrics is off (telemetry.enabled = false)")
        }
        (Route::Models, &Method::GET | &Method::HEAD) => v1::models(shared),
        (Route::Health | Route::Metrics | Route::Models | Route::ResourceMetadata, _) => {
            not_allowed(method, "GET, HEAD")
        }
        (
            Route::QueueStatus
            | Route::QueueEntry
            | Route::Attestation
            | Route::Update
            | Route::Memory,
            _,
        ) => not_allowed(method, "GET"),
        (Route::Power, _) => not_allowed(method, "GET, PUT"),
        (Route::ChatCompletions | Route::McpCompletions | Route::QueueSync, _) => {
            not_allowed(method, "POST")
        }
        (Route::Mcp, _) | (Route::Unknown, _) => not_found(
            "no such route; the gateway serves /mcp, /v1/chat/completions, /v1/mcp/completions, \
             /v1/models, /v1/queue/status, /v1/queue/sync, /v1/queue/{id}, /v1/attestation, \
             /v1/power, /v1/update, /v1/memory, /health and /metrics",
        ),
    }
}

/// `/mcp`: the body is read under the size limit and the deadline, checked to be JSON (else
/// the JSON-RPC parse error, -32700, or invalid params, -32602), and handed to the MCP service, whose answer (JSON or an
/// SSE stream) streams back. Only reading the body is bounded by the deadline: SSE streams are
/// long-lived by design, and each forwarded call has its own timeout.
async fn mcp(
    shared: &Shared,
    live: &LiveSettings,
    request: Request<Incoming>,
    deadline: tokio::time::Instant,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let read = read_body(
        body,
        &parts.headers,
        live.max_body_bytes,
        &shared.memory.http_buffers,
    );
    let (body, _held) = match tokio::time::timeout_at(deadline, read).await {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => return e.into_response(),
        Err(_) => return request_timeout(live),
    };
    if parts.method == Method::POST {
        if let Some(error) = crate::mcp::transport::reject_malformed(&body) {
            return json_response(StatusCode::BAD_REQUEST, &error);
        }
    }
    let request = Request::from_parts(parts, http_body_util::Full::new(body));
    shared.mcp_http.handle(request).await
}

fn not_allowed(method: &Method, allow: &'static str) -> Response<Body> {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed here; use {allow}"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

fn not_found(message: &str) -> Response<Body> {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", message).into_response()
}

fn health(shared: &Shared) -> Response<Body> {
    let (ready, subsystems) = shared.health.snapshot();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "version": crate::version(),
        "uptime_seconds": shared.started.elapsed().as_secs(),
        "subsystems": subsystems,
    });
    json_response(status, &body)
}

/// Reads the whole body, refusing with 413 as soon as it is known to exceed `max`, and with 503
/// when the HTTP buffers' memory budget cannot hold it (a declared length is taken from the
/// budget before any byte is read; a chunked body takes its share as it arrives).
async fn read_body(
    body: Incoming,
    headers: &http::HeaderMap,
    max: u64,
    budget: &Arc<Budget>,
) -> Result<(Bytes, Reservation), ApiError> {
    if let Some(error) = declared_too_large(headers, max) {
        return Err(error);
    }
    let declared = declared_length(headers).unwrap_or(0);
    let mut held = budget
        .reserve(declared)
        .ok_or_else(|| memory_exhausted(budget, "this request's body"))?;
    let mut reserved = declared;
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let mut body = Limited::new(body, limit);
    let mut bytes = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large(max)),
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("the request body could not be read: {e}"),
                ))
            }
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let needed = (bytes.len() + data.len()) as u64;
        if needed > reserved {
            if !held.grow(needed - reserved) {
                return Err(memory_exhausted(budget, "this request's body"));
            }
            reserved = needed;
        }
        bytes.extend_from_slice(&data);
    }
    Ok((Bytes::from(bytes), held))
}

/// A response whose whole body is in memory keeps its size taken from the HTTP buffers'
/// budget until it has been sent (or the connection is gone); one that does not fit is
/// replaced by a 503. Streamed bodies (SSE) are produced as the socket takes them and are not
/// held.
fn hold_while_sent(budget: &Arc<Budget>, response: Response<Body>) -> Response<Body> {
    let size = match response.body().size_hint().exact() {
        Some(size) if size > 0 => size,
        _ => return response,
    };
    match budget.reserve(size) {
        Some(held) => response.map(|body| HeldBody { body, _held: held }.boxed()),
        None => memory_exhausted(budget, &format!("this answer ({size} bytes)")).into_response(),
    }
}

/// A response body and the budget it holds, given back when hyper drops the body: sent, or
/// the connection gone. Frames and size pass through (the length stays known).
struct HeldBody {
    body: Body,
    _held: Reservation,
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// 503 for `what` that the HTTP buffers' budget cannot take now.
fn memory_exhausted(budget: &Budget, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "memory_budget_exhausted",
        format!(
            "{what} does not fit in the memory budget for HTTP buffers now (memory.http_buffers_kb = {} KiB, shared by all requests in flight); try again shortly",
            budget.limit() / 1024
        ),
    )
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body exceeds gateway.max_body_bytes ({max} bytes)"),
    )
}

/// 413 when `Content-Length` already says the body is over the limit.
pub(super) fn declared_too_large(headers: &http::HeaderMap, max: u64) -> Option<ApiError> {
    let declared = declared_length(headers)?;
    (declared > max).then(|| too_large(max))
}

/// The body's length as `Content-Length` gives it.
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Gateway};

    #[test]
    fn health_is_503_until_every_subsystem_is_ready() {
        let state = tempfile::tempdir().unwrap();
        let config = Config::builder()
            .offline_queue_path(state.path().join("queue.sqlite"))
            .build()
            .unwrap();
        let gateway = Gateway::new(config).unwrap();
        let shared = &gateway.shared;
        let response = super::health(shared);
        assert_eq!(response.status(), 503, "not listening yet");

        shared.health.set("http", true, "listening");
        assert_eq!(super::health(shared).status(), 200);
        shared.health.set("queue", false, "opening the database");
        assert_eq!(super::health(shared).status(), 503);
    }
}
