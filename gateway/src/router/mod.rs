//! Which model answers: the [`ModelRouter`] decides between the local model and the cloud for
//! each turn of a completion, and says where to fall back; [`Completions`] carries the plan
//! out (first-token deadline, fallback, tool rounds through the MCP layer). The policy itself
//! is portable and lives in `mcp-edge-core` (docs/WASM.md).

mod completion;
mod local_tools;

use std::time::Duration;

use crate::config::ModelsConfig;
pub use completion::{
    CompletionError, CompletionRequest, Completions, RouteInfo, Summary, ToolHost, ToolOutcome,
    ToolRun, Update,
};

pub use mcp_edge_core::routing::{
    Backend, Choice, CloudState, Fallback, LocalState, ModelRouter, PolicyRouter, RouteInputs,
};

/// The configured policy: `models.routing` and `models.fallback_threshold_ms`.
pub fn policy_router(config: &ModelsConfig) -> PolicyRouter {
    PolicyRouter {
        routing: config.routing,
        threshold: Duration::from_millis(config.fallback_threshold_ms),
    }
}
