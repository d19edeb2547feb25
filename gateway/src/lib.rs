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

pub use config::Config;
pub use server::{Gateway, GatewayError, GatewayHandle, ReloadReport};
