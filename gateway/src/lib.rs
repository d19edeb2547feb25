//! `mcp-edge-gateway`: the library behind the `mcp-gateway` daemon.
//!
//! The module map follows the request path: [`config`] says what to run, [`server`] listens and
//! routes, [`health`] and [`telemetry`] report, [`systemd`] talks to the service manager, and
//! [`daemon`] ties them to a process (signals, reload, exit codes).

pub mod config;
pub mod daemon;
pub mod device;
pub mod health;
pub mod logging;
pub mod mcp;
pub mod server;
pub mod systemd;
pub mod telemetry;

pub use config::Config;
pub use server::{Gateway, GatewayError, GatewayHandle, ReloadReport};
