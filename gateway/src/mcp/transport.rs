//! How clients reach the MCP server: Streamable HTTP behind `/mcp` (both protocol eras on one
//! endpoint), or stdio for a host that spawns the gateway.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use std::time::Duration;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

use super::McpGateway;

/// The `/mcp` service. Host, Origin and body-size checks happen in the gateway's HTTP layer
/// before a request reaches it (they follow `gateway.*` and reload live), so rmcp's own copies
/// of those checks are opened up here rather than configured twice.
pub struct HttpService(StreamableHttpService<McpGateway, LocalSessionManager>);

impl std::fmt::Debug for HttpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpService")
    }
}

impl HttpService {
    /// Answers one HTTP request to `/mcp`.
    pub async fn handle<B>(
        &self,
        request: http::Request<B>,
    ) -> http::Response<BoxBody<Bytes, Infallible>>
    where
        B: http_body::Body + Send + 'static,
        B::Error: std::fmt::Display,
    {
        self.0.handle(request).await
    }
}

/// Keep-alive comments on open SSE streams, so that NAT and proxies do not drop idle ones.
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn http_service(gateway: &McpGateway, shutdown: CancellationToken) -> HttpService {
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_max_request_body_bytes(usize::MAX)
        .with_sse_keep_alive(Some(SSE_KEEP_ALIVE))
        .with_cancellation_token(shutdown);
    let gateway = gateway.clone();
    HttpService(StreamableHttpService::new(
        move || Ok(gateway.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    ))
}

/// The JSON-RPC error for a POST body the MCP service must not see: not JSON at all (-32700,
/// parse error), or a request whose params do not fit its method (-32602, invalid params; the
/// SDK would take such a request for an unknown custom method).
pub fn reject_malformed(body: &[u8]) -> Option<serde_json::Value> {
    use rmcp::model::*;
    let error = |id: serde_json::Value, code: i32, message: String| {
        Some(
            serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } }),
        )
    };
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(e) => return error(serde_json::Value::Null, -32700, format!("Parse error: {e}")),
    };
    let method = value.get("method").and_then(serde_json::Value::as_str)?;
    let id = value.get("id").cloned()?;
    let params = value
        .get("params")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    fn fits<T: serde::de::DeserializeOwned>(
        params: serde_json::Value,
    ) -> Result<(), serde_json::Error> {
        serde_json::from_value::<T>(params).map(drop)
    }
    let checked = match method {
        "tools/call" => fits::<CallToolRequestParams>(params),
        "prompts/get" => fits::<GetPromptRequestParams>(params),
        "resources/read" => fits::<ReadResourceRequestParams>(params),
        "completion/complete" => fits::<CompleteRequestParams>(params),
        "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" => {
            fits::<Option<PaginatedRequestParams>>(params)
        }
        _ => Ok(()),
    };
    match checked {
        Ok(()) => None,
        Err(e) => error(id, -32602, format!("Invalid params for {method}: {e}")),
    }
}

/// Serves MCP on stdin/stdout until the client closes stdin.
pub async fn serve_stdio(gateway: McpGateway) -> Result<(), String> {
    let running = gateway
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("MCP handshake on stdio failed: {e}"))?;
    running
        .waiting()
        .await
        .map_err(|e| format!("stdio session failed: {e}"))?;
    Ok(())
}
