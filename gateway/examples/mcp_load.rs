//! Load generator for `tools/call` over Streamable HTTP, used by `gateway/bench/mcp-tools-call.sh`.
//!
//!     mcp_load URL TOOL CONNECTIONS SECONDS
//!
//! Each connection sends stateless (2026-07-28) `tools/call` requests back to back on one
//! keep-alive HTTP/1.1 connection and reads each answer to its end. Prints one line:
//! `requests=N seconds=S rps=R p50_ms=A p99_ms=B errors=E`.

#![allow(clippy::print_stdout)] // The figures are this program's output.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, tool, connections, seconds] = args.as_slice() else {
        return Err("usage: mcp_load URL TOOL CONNECTIONS SECONDS".into());
    };
    let uri: http::Uri = url.parse()?;
    let connections: usize = connections.parse()?;
    let duration = Duration::from_secs_f64(seconds.parse()?);
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {
            "name": tool, "arguments": {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": { "name": "mcp_load", "version": "1" }
            }
        }
    })
    .to_string();
    let deadline = Instant::now() + duration;
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (uri, tool, body) = (uri.clone(), tool.clone(), body.clone());
        workers.push(tokio::spawn(async move {
            let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
            let stream = tokio::net::TcpStream::connect(&authority).await?;
            stream.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            let (mut latencies, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                let request = http::Request::post(uri.clone())
                    .header("host", &authority)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-protocol-version", "2026-07-28")
                    .header("mcp-method", "tools/call")
                    .header("mcp-name", &tool)
                    .body(Full::new(Bytes::from(body.clone())))?;
                let started = Instant::now();
                let response = sender.send_request(request).await?;
                let ok = response.status().is_success();
                let answer = response.into_body().collect().await?.to_bytes();
                latencies.push(started.elapsed());
                if !ok || !String::from_utf8_lossy(&answer).contains("\"result\"") {
                    errors += 1;
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((latencies, errors))
        }));
    }
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for worker in workers {
        let (l, e) = worker.await?.map_err(|e| e.to_string())?;
        latencies.extend(l);
        errors += e;
    }
    latencies.sort();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let total = latencies.len();
    println!(
        "requests={total} seconds={:.1} rps={:.0} p50_ms={:.3} p99_ms={:.3} errors={errors}",
        duration.as_secs_f64(),
        total as f64 / duration.as_secs_f64(),
        percentile(0.50),
        percentile(0.99)
    );
    Ok(())
}
