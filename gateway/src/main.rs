//! `mcp-gateway`: the command line. Everything it runs lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcp_edge_gateway::daemon;

/// Hardened MCP gateway for edge Linux devices.
#[derive(Debug, Parser)]
#[command(name = "mcp-gateway", version = mcp_edge_gateway::version(), about)]
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
    /// TPM attestation, the verifier's side.
    #[command(subcommand)]
    Attest(Attest),
    /// Secrets sealed to this device's TPM.
    #[command(subcommand)]
    Secret(Secret),
    /// CPU frequency, the privileged side of the power governor.
    #[command(subcommand)]
    Cpufreq(Cpufreq),
}

#[derive(Debug, Subcommand)]
enum Cpufreq {
    /// Apply the profile the gateway asked for in REQUEST ("<profile> <percent>") to every
    /// cpufreq policy; run as root by mcp-gateway-cpufreq.service. Exit 0 applied, 1 a write
    /// was refused, 2 unreadable request.
    Apply {
        #[arg(value_name = "REQUEST")]
        request: PathBuf,
        /// Directory under which /sys is found (a fixture tree in tests).
        #[arg(long, value_name = "DIR", default_value = "/")]
        system_root: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum Secret {
    /// Seal the first line of standard input to the current PCR values and write
    /// `security.sealed_dir/NAME.json`; configure it as `{ sealed = "NAME" }`.
    Seal {
        #[arg(value_name = "NAME")]
        name: String,
        /// PCRs (SHA-256 bank) whose values must be unchanged to unseal: by default the
        /// firmware, boot loader and kernel code, the Secure Boot state, and the gateway.
        #[arg(long, default_value = "0,2,4,7,23")]
        pcrs: String,
        /// Configuration file naming the TPM and `sealed_dir`.
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum Attest {
    /// Check evidence from GET /v1/attestation (or the attest_device tool): signature, nonce,
    /// PCR digest, event log replay. Exit 0 accepted, 1 rejected, 2 unreadable input.
    Verify {
        /// The evidence (JSON); `-` for standard input.
        #[arg(value_name = "EVIDENCE")]
        evidence: PathBuf,
        /// The nonce the evidence was requested with (hex).
        #[arg(long)]
        nonce: String,
        /// The device's attestation key (PEM) recorded at enrolment; without it any TPM's
        /// key is accepted.
        #[arg(long, value_name = "PEM")]
        ak: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config } => daemon::serve(config),
        Command::Stdio { config } => daemon::stdio(config),
        Command::CheckConfig { file } => daemon::check_config(&file),
        Command::HashToken => daemon::hash_token(),
        Command::Attest(Attest::Verify {
            evidence,
            nonce,
            ak,
        }) => mcp_edge_gateway::tpm::cli::verify_command(&evidence, &nonce, ak.as_deref()),
        Command::Secret(Secret::Seal { name, pcrs, config }) => {
            mcp_edge_gateway::tpm::cli::seal_command(&name, &pcrs, config.as_deref())
        }
        Command::Cpufreq(Cpufreq::Apply {
            request,
            system_root,
        }) => mcp_edge_gateway::power::cpufreq::apply_command(
            &request,
            &mcp_edge_gateway::device::SystemRoot::new(system_root),
        ),
    }
}
