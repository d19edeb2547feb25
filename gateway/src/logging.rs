//! Structured logs on stderr: coloured with timestamps on a terminal, plain under journald
//! (which adds its own timestamps). `MCP_EDGE_LOG` takes a filter such as
//! `info,mcp_edge_gateway::server=debug`: comma-separated `target=level` directives and one bare
//! default level (tracing-subscriber's `Targets`, which needs no regular-expression engine).

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Without `MCP_EDGE_LOG`: the gateway's own info lines; the MCP SDK only when something is wrong
/// (it logs every notification at info).
const DEFAULT_FILTER: &str = "info,rmcp=warn";

/// Environment variable holding the log filter.
pub const FILTER_ENV: &str = "MCP_EDGE_LOG";

/// Installs the global subscriber. Call once, at start-up.
pub fn init() {
    let (filter, problem) = parse_filter(std::env::var(FILTER_ENV).ok().as_deref());
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!under_journald && std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(filter);
    if under_journald {
        registry.with(layer.without_time()).init();
    } else {
        registry.with(layer).init();
    }
    if let Some(problem) = problem {
        tracing::warn!("{problem}");
    }
}

/// The filter `value` names, or the default and why `value` was not used.
fn parse_filter(value: Option<&str>) -> (Targets, Option<String>) {
    let default = || DEFAULT_FILTER.parse().unwrap_or_default();
    match value.map(str::parse::<Targets>) {
        None => (default(), None),
        Some(Ok(filter)) => (filter, None),
        Some(Err(e)) => (
            default(),
            Some(format!(
                "{FILTER_ENV} is not a log filter ({e}); logging with \"{DEFAULT_FILTER}\""
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn the_default_keeps_the_sdk_quiet() {
        let (filter, problem) = parse_filter(None);
        assert!(problem.is_none());
        assert!(filter.would_enable("mcp_edge_gateway::server", &Level::INFO));
        assert!(!filter.would_enable("mcp_edge_gateway::server", &Level::DEBUG));
        assert!(!filter.would_enable("rmcp::service", &Level::INFO));
        assert!(filter.would_enable("rmcp::service", &Level::WARN));
    }

    #[test]
    fn directives_name_targets_and_a_bad_filter_falls_back_with_a_reason() {
        let (filter, _) = parse_filter(Some("warn,mcp_edge_gateway::server=debug"));
        assert!(filter.would_enable("mcp_edge_gateway::server::tls", &Level::DEBUG));
        assert!(!filter.would_enable("mcp_edge_gateway::queue", &Level::INFO));

        let (filter, problem) = parse_filter(Some("server=loud"));
        assert!(filter.would_enable("mcp_edge_gateway", &Level::INFO));
        assert!(problem.is_some_and(|p| p.contains(FILTER_ENV) && p.contains(DEFAULT_FILTER)));
    }
}
