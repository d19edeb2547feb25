//! The gateway's integration tests, one test binary: each module starts the real
//! `mcp-gateway` (and the peers it talks to) on loopback through the harness in `common`.
//! One binary links the gateway once instead of once per file, and its tests run in parallel
//! across the files (`cargo test` runs test binaries one after another).

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test.

mod common;

mod analytics;
mod auth;
mod completions;
mod config;
mod conformance;
mod http;
mod image_files;
mod lifecycle;
mod mcp;
mod memory;
mod oauth;
mod offline;
mod power;
mod sandbox;
mod systemd;
mod telemetry;
mod tls;
mod tpm;
mod update;
