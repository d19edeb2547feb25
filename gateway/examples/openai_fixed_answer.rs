//! The cloud peer of the offline-queue benchmark: an OpenAI-compatible chat endpoint that
//! answers every request at once with the same short streamed completion (no model can run
//! here, and the benchmark measures the gateway, not a model), or with 503 while it is down.
//! It starts down with `--down`; SIGUSR1 toggles it. Logs `listening address=IP:PORT`.
//!
//!     openai_fixed_answer [ADDR] [--down]

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

const ANSWER: &str = concat!(
    "data: {\"id\":\"bench\",\"object\":\"chat.completion.chunk\",\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Maintenance is due in 40 hours.\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"bench\",\"object\":\"chat.completion.chunk\",\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"id\":\"bench\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":60,\"completion_tokens\":9,\"total_tokens\":69}}\n\n",
    "data: [DONE]\n\n"
);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or("127.0.0.1:0", String::as_str);
    let down = Arc::new(AtomicBool::new(args.iter().any(|a| a == "--down")));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("listening address={}", listener.local_addr()?);
    {
        let down = Arc::clone(&down);
        let mut usr1 =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                let was = down.fetch_xor(true, Ordering::Relaxed);
                eprintln!("now {}", if was { "up" } else { "down" });
            }
        });
    }
    loop {
        let (stream, _) = listener.accept().await?;
        let down = Arc::clone(&down);
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let down = down.load(Ordering::Relaxed);
                async move {
                    let _ = request.into_body().collect().await;
                    let response = if down {
                        hyper::Response::builder()
                            .status(503)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(
                                b"{\"error\":{\"message\":\"down\"}}",
                            )))
                    } else {
                        hyper::Response::builder()
                            .header("content-type", "text/event-stream")
                            .body(Full::new(Bytes::from_static(ANSWER.as_bytes())))
                    };
                    Ok::<_, Infallible>(response.unwrap_or_default())
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
