//! Structured logs on stderr: coloured with timestamps on a terminal, plain under journald
//! (which adds its own timestamps). `MCP_EDGE_LOG` takes a filter such as
//! `info,mcp_edge_gateway::server=debug`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Without `MCP_EDGE_LOG`: the gateway's own info lines; the MCP SDK only when something is wrong
/// (it logs every notification at info).
const DEFAULT_FILTER: &str = "info,rmcp=warn";

/// Environment variable holding the log filter.
pub const FILTER_ENV: &str = "MCP_EDGE_LOG";

/// Installs the global subscriber. Call once, at start-up.
pub fn init() {
    let filter =
        EnvFilter::try_from_env(FILTER_ENV).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!under_journald && std::io::stderr().is_terminal());
    if under_journald {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
