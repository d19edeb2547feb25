//! Benchmark baseline: the smallest hyper 1 server on the same runtime and HTTP stack as the
//! gateway, answering every request with a fixed JSON body of the size `/health` returns. No
//! limits, metrics, host check or routing: the gap between it and the gateway is what those
//! cost. Prints `listening address=IP:PORT` like the gateway; used by `gateway/bench/*.sh`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

const BODY: &str = r#"{"status":"ready","subsystems":{"http":{"detail":"listening on 127.0.0.1:40000","ready":true}},"uptime_seconds":1,"version":"0.1.0"}"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("listening address={}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_request| async {
                let mut response =
                    http::Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Ok::<_, Infallible>(response)
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
