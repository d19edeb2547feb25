//! `mcp-edge-core`: the portable core as an MCP server on stdin/stdout (the stdio transport),
//! for a WASI runtime or any host that spawns it. No arguments, no configuration.

use std::io;
use std::process::ExitCode;

use mcp_edge_core::mcp::Server;
use mcp_edge_core::tools::CoreTools;

const INSTRUCTIONS: &str = "mcp-edge's portable core: route_request shows the gateway's routing \
decision for a request; queue_encode and queue_decode show payloads as the offline queue stores them.";

fn main() -> ExitCode {
    let mut server = Server::new(
        CoreTools,
        "mcp-edge-core",
        env!("CARGO_PKG_VERSION"),
        INSTRUCTIONS,
    );
    match server.serve(io::stdin().lock(), io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-edge-core: stdin or stdout failed: {e}");
            ExitCode::FAILURE
        }
    }
}
