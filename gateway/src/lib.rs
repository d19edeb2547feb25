//! `mcp-edge-gateway`: the library behind the `mcp-gateway` daemon.
//!
//! The module map follows the request path: [`config`] says what to run, [`server`] listens and
//! routes, [`health`] and [`telemetry`] report, [`systemd`] talks to the service manager, and
//! [`daemon`] ties them to a process (signals, reload, exit codes).

pub mod cloud;
pub mod config;
pub mod daemon;
pub mod device;
pub mod health;
pub mod inference;
pub mod logging;
pub mod mcp;
pub mod openai;
pub mod power;
pub mod queue;
pub mod router;
pub mod sandbox;
pub mod server;
pub mod systemd;
pub mod telemetry;
pub mod tpm;
pub mod update;

pub use config::Config;

/// The gateway's version: the crate's, or `MCP_EDGE_VERSION` when the build sets it (an image
/// build for an update does, e.g. `0.1.0+2`, so that the devices and the bundle say which build
/// runs). Reported by `--version`, `/health`, `/metrics`, MCP `serverInfo` and `/v1/update`.
pub const VERSION: &str = match option_env!("MCP_EDGE_VERSION") {
    Some(version) if !version.is_empty() => version,
    _ => env!("CARGO_PKG_VERSION"),
};
pub use server::{Gateway, GatewayError, GatewayHandle, ReloadReport};
