//! `mcp-edge-gateway`: the library behind the `mcp-gateway` daemon.
//!
//! The module map follows the request path: [`config`] says what to run, [`server`] listens and
//! routes, [`health`] and [`telemetry`] report, [`systemd`] talks to the service manager, and
//! [`daemon`] ties them to a process (signals, reload, exit codes).

pub mod analytics;
pub mod cloud;
pub mod compression;
pub mod config;
pub mod daemon;
pub mod device;
pub mod health;
pub mod inference;
pub mod logging;
pub mod mcp;
pub mod memory;
pub mod openai;
pub mod power;
pub mod queue;
pub mod router;
pub mod sandbox;
pub mod server;
pub mod systemd;
pub mod telemetry;
pub mod tls;
pub mod tpm;
pub mod update;

pub use config::Config;
pub use server::{Gateway, GatewayError, GatewayHandle, ReloadReport};

/// Room for a version stamped into a built binary (`qemu/stamp-version.sh`, which
/// `qemu/build-image.sh` runs for `MCP_EDGE_VERSION`: `objcopy --update-section`), so that an
/// image build labels its gateway without compiling it again. All zero: not stamped.
// The unsafe_code lint counts `link_section` (a name clash with another section could break
// the link); this name is ours alone, and the bytes are only ever read as a string.
#[allow(unsafe_code)]
#[used]
#[link_section = ".mcp_edge_version"]
static VERSION_STAMP: [u8; 64] = [0; 64];

/// The gateway's version: the stamped one, else the crate's. Reported by `--version`,
/// `/health`, `/metrics`, MCP `serverInfo`, the telemetry batches and the start-up line.
pub fn version() -> &'static str {
    // Read through an opaque reference: the stamp changes after compilation, so the compiler
    // must not fold the zeros it was compiled with.
    let stamp: &'static [u8; 64] = std::hint::black_box(&VERSION_STAMP);
    let length = stamp.iter().position(|&b| b == 0).unwrap_or(stamp.len());
    match std::str::from_utf8(&stamp[..length]) {
        Ok(stamped) if !stamped.is_empty() => stamped,
        _ => env!("CARGO_PKG_VERSION"),
    }
}
