//! The portable part of mcp-edge: what the gateway does that needs no operating system beyond
//! a byte stream, in a crate that also builds for `wasm32-wasip1` (docs/WASM.md).
//!
//! - [`routing`]: the policy that picks the local model or the cloud for each request; the
//!   gateway runs it for every completion.
//! - [`codec`]: the offline queue's pure-Rust payload codecs; the gateway stores entries with
//!   them.
//! - [`mcp`]: a synchronous MCP server on a line-delimited stream (both protocol revisions), and
//!   [`tools`], the tools it serves over the two above. The `mcp-edge-core` binary is that
//!   server on stdin/stdout.

pub mod codec;
pub mod mcp;
pub mod routing;
pub mod tools;
