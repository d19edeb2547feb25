//! One MCP message as a client sends it: the portable core's JSON-RPC engine (the WASM build's
//! server) answers it, and the official SDK's message types (what the gateway's `/mcp` and
//! `mcp-gateway stdio` deserialize every request into) parse it. Neither may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_edge_core::mcp::Server;
use mcp_edge_core::tools::CoreTools;

fuzz_target!(|data: &[u8]| {
    let mut server = Server::new(CoreTools, "fuzz", "0", "");
    let mut output = Vec::new();
    // The stream form: framing, size limit, UTF-8, then each line.
    let _ = server.serve(data, &mut output);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = serde_json::from_str::<rmcp::model::ClientJsonRpcMessage>(text);
    }
});
