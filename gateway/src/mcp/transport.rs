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
    pub async fn handle<B>(&self, request: http::Request<B>) -> http::Response<BoxBody<Bytes, Infallible>>
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

/// Serves MCP on stdin/stdout until the client closes stdin.
pub async fn serve_stdio(gateway: McpGateway) -> Result<(), String> {
    let running = gateway
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("MCP handshake on stdio failed: {e}"))?;
    running.waiting().await.map_err(|e| format!("stdio session failed: {e}"))?;
    Ok(())
}
