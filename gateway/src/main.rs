//! `mcp-gateway`: the command line. Everything it runs lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcp_edge_gateway::daemon;

/// Hardened MCP gateway for edge Linux devices.
#[derive(Debug, Parser)]
#[command(name = "mcp-gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (on embedded defaults unless --config is given).
    Serve {
        /// Configuration file (mcp-edge.toml).
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Serve MCP on stdin/stdout for a host that spawns the gateway.
    Stdio {
        /// Configuration file (mcp-edge.toml).
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file and exit: 0 valid, 78 invalid.
    CheckConfig {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Read a client's bearer token from stdin and print the `token_sha256` to configure.
    HashToken,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config } => daemon::serve(config),
        Command::Stdio { config } => daemon::stdio(config),
        Command::CheckConfig { file } => daemon::check_config(&file),
        Command::HashToken => daemon::hash_token(),
    }
}
