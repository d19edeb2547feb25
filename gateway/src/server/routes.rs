//! One request, top to bottom: deadline → host check → body limit → route → metrics.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;

use super::response::{json_response, with_type, ApiError, Body};
use super::{attestation, auth, power, queue, update, v1, LiveSettings, Shared};
use crate::telemetry;

/// The routes the gateway knows, as they appear in metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
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
    ResourceMetadata,
    Unknown,
}

impl Route {
    fn of(path: &str) -> Self {
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
            p if p.starts_with("/.well-known/oauth-protected-resource") => Route::ResourceMetadata,
            p if entry_id(p).is_some() => Route::QueueEntry,
            _ => Route::Unknown,
        }
    }

    /// The scope a client needs for this route (`None`: open to anyone who reaches it).
    fn scope(self, method: &Method) -> auth::Scope {
        match self {
            Route::Power if method == Method::PUT => Some("admin"),
            Route::Power => Some("power"),
            Route::Health | Route::ResourceMetadata | Route::Unknown => None,
            Route::Metrics => Some("metrics"),
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
            Route::Health | Route::Metrics | Route::ResourceMetadata => false,
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
    let read = read_body(body, &parts.headers, live.max_body_bytes);
    match tokio::time::timeout_at(deadline, read).await {
        Ok(Ok(body)) => match (route, &parts.method) {
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
        (Route::QueueStatus | Route::QueueEntry | Route::Attestation | Route::Update, _) => {
            not_allowed(method, "GET")
        }
        (Route::Power, _) => not_allowed(method, "GET, PUT"),
        (Route::ChatCompletions | Route::McpCompletions | Route::QueueSync, _) => {
            not_allowed(method, "POST")
        }
        (Route::Mcp, _) | (Route::Unknown, _) => not_found(
            "no such route; the gateway serves /mcp, /v1/chat/completions, /v1/mcp/completions, \
             /v1/models, /v1/queue/status, /v1/queue/sync, /v1/queue/{id}, /v1/attestation, \
             /v1/power, /v1/update, /health and /metrics",
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
    let body = match tokio::time::timeout_at(
        deadline,
        read_body(body, &parts.headers, live.max_body_bytes),
    )
    .await
    {
        Ok(Ok(body)) => body,
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

/// Reads the whole body, refusing with 413 as soon as it is known to exceed `max`.
async fn read_body(body: Incoming, headers: &http::HeaderMap, max: u64) -> Result<Bytes, ApiError> {
    if let Some(error) = declared_too_large(headers, max) {
        return Err(error);
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(max)),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("the request body could not be read: {e}"),
        )),
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body exceeds gateway.max_body_bytes ({max} bytes)"),
    )
}

/// 413 when `Content-Length` already says the body is over the limit.
fn declared_too_large(headers: &http::HeaderMap, max: u64) -> Option<ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()?;
    (declared > max).then(|| too_large(max))
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
