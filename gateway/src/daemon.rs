//! The `mcp-gateway` process: start-up checks, signals (SIGTERM/SIGINT drain, SIGHUP reload)
//! and exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::config::{Config, ConfigError};
use crate::{logging, systemd, Gateway, GatewayHandle};

/// Exit status for a configuration that cannot be used (sysexits' `EX_CONFIG`); the service
/// unit lists it in `RestartPreventExitStatus=` so systemd does not restart into the same error.
pub const EXIT_CONFIG: u8 = 78;
/// Exit status for every other start-up or runtime failure.
pub const EXIT_FAILURE: u8 = 1;

/// Features whose configuration is parsed and validated but which this build does not run yet,
/// as `(feature, section)`. The gateway names them at start-up instead of pretending.
pub const INACTIVE_FEATURES: &[(&str, &str)] =
    &[("GPU offload of the local model", "power.gpu_enabled")];

/// Loads `path`, or the embedded defaults without one (validation refuses what this build
/// cannot honour).
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let (text, origin) = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            (text, path.display().to_string())
        }
        None => (String::new(), "embedded defaults".to_owned()),
    };
    Config::from_toml(&text, &origin)
}

/// `mcp-gateway check-config FILE`.
pub fn check_config(path: &Path) -> ExitCode {
    match load(Some(path)) {
        Ok(_) => {
            #[allow(clippy::print_stdout)] // The command's answer, not a log line.
            {
                println!("{}: configuration is valid", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// `mcp-gateway hash-token`: the SHA-256 of the token on stdin (first line), for
/// `[[security.clients]] token_sha256`, so that the token itself is never written to a file.
pub fn hash_token() -> ExitCode {
    let mut token = String::new();
    match std::io::stdin().read_line(&mut token) {
        Ok(_) if !token.trim().is_empty() => {
            #[allow(clippy::print_stdout)] // The command's answer, not a log line.
            {
                println!("{}", crate::server::hash_token(token.trim()));
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("hash-token: give the token on standard input, for example: printf %s \"$TOKEN\" | mcp-gateway hash-token");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The multi-threaded async runtime both modes run on.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            error!(error = %e, "cannot start the async runtime");
            ExitCode::from(EXIT_FAILURE)
        })
}

/// [`load`], logging the problems and mapping them to the exit code.
fn load_or_exit(path: Option<&Path>) -> Result<Config, ExitCode> {
    load(path).map_err(|e| {
        error!("invalid configuration:\n{e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// `mcp-gateway serve [--config FILE]`: runs until SIGTERM or SIGINT, then drains and exits 0.
pub fn serve(config_path: Option<PathBuf>) -> ExitCode {
    logging::init();
    // Before any thread exists: taking the socket unsets LISTEN_* in the environment.
    let inherited = match systemd::take_listener() {
        Ok(listener) => listener,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let config = match load_or_exit(config_path.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let source = config_path
        .as_ref()
        .map_or("embedded defaults".into(), |p| p.display().to_string());
    info!(version = crate::version(), config = %source, "starting mcp-gateway");
    let inactive: Vec<String> = INACTIVE_FEATURES
        .iter()
        .map(|(f, s)| format!("{f} ({s})"))
        .collect();
    info!(
        "not built in this version, configuration validated only: {}",
        inactive.join(", ")
    );

    // Still one thread: the model's thread count is read from the environment once.
    crate::inference::set_threads(crate::power::governor::threads_at_start(&config));
    crate::tpm::quiet_library_logs();
    let socket_activated = inherited.is_some();
    if config.power.exit_on_idle && !socket_activated {
        warn!("power.exit_on_idle needs socket activation (mcp-gateway.socket): nothing would start the gateway again, so it stays up");
    }
    let exit_on_idle = config.power.exit_on_idle && socket_activated;
    let listener = match inherited {
        Some(listener) => {
            info!("using the listening socket passed by systemd");
            Some(listener)
        }
        // The sandbox may drop root, so the socket is bound before it.
        None if config.security.sandbox => {
            let addr = config.gateway.bind_address;
            match std::net::TcpListener::bind(addr) {
                Ok(listener) => Some(listener),
                Err(source) => {
                    error!("{}", crate::GatewayError::Bind { addr, source });
                    return ExitCode::from(EXIT_FAILURE);
                }
            }
        }
        None => None,
    };
    if let Err(code) = enter_sandbox(&config, config_path.as_deref()) {
        return code;
    }
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(run(config, config_path, listener, exit_on_idle)) {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(
            e @ (crate::GatewayError::LocalModel(_)
            | crate::GatewayError::Config(_)
            | crate::GatewayError::Tls(_)
            | crate::GatewayError::Tpm(_)),
        ) => {
            error!("{e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            error!("{e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `mcp-gateway stdio [--config FILE]`: one MCP session on stdin/stdout, for a host that
/// spawns the gateway. Logs go to stderr; the process exits when the host closes stdin.
pub fn stdio(config_path: Option<PathBuf>) -> ExitCode {
    logging::init();
    let loaded = load_or_exit(config_path.as_deref()).and_then(|mut config| {
        crate::tpm::unseal_secrets(&mut config, None).map_err(|e| {
            error!("{e}");
            ExitCode::from(EXIT_CONFIG)
        })?;
        Ok(config)
    });
    let (config, runtime) = match loaded.and_then(|c| {
        // Before the runtime's threads: the model's thread count is read once, and the
        // sandbox must start with a single thread.
        crate::inference::set_threads(c.models.threads);
        enter_sandbox(&c, config_path.as_deref())?;
        Ok((c, runtime()?))
    }) {
        Ok(pair) => pair,
        Err(code) => return code,
    };
    let local = match crate::inference::LocalModel::from_config(&config.models) {
        Ok(local) => local,
        Err(e) => {
            error!("local model: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let served = runtime.block_on(async {
        let gateway = crate::mcp::McpGateway::standalone(config, local);
        gateway.start();
        let served = crate::mcp::transport::serve_stdio(gateway.clone()).await;
        gateway.shutdown();
        served
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `[security] sandbox`: confines the process (still single-threaded) and logs what is in
/// force; a sandbox that cannot be entered stops start-up with exit 78.
fn enter_sandbox(config: &Config, config_path: Option<&Path>) -> Result<(), ExitCode> {
    if !config.security.sandbox {
        return Ok(());
    }
    match crate::sandbox::enter(config, config_path) {
        Ok(report) => {
            info!("sandbox in force: {report}");
            Ok(())
        }
        Err(e) => {
            error!("{e}");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

/// Serves on `listener` (systemd's, or bound before the sandbox), else binds
/// `gateway.bind_address`. With `exit_on_idle` it stops once the governor finds it idle and no
/// request waits in the offline queue; the socket unit starts it again on the next connection.
async fn run(
    config: Config,
    config_path: Option<PathBuf>,
    listener: Option<std::net::TcpListener>,
    exit_on_idle: bool,
) -> Result<(), crate::GatewayError> {
    let bind_address = config.gateway.bind_address;
    let gateway = Gateway::new(config)?;
    let signals = tokio::spawn(handle_signals(gateway.handle(), config_path));
    let idle_exit = exit_on_idle.then(|| tokio::spawn(exit_when_idle(gateway.handle())));
    let served = match listener {
        Some(listener) => {
            let listener = listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(listener))
                .map_err(crate::GatewayError::Listener)?;
            gateway.serve_listener(listener).await
        }
        None => gateway.serve(bind_address).await,
    };
    signals.abort();
    if let Some(idle_exit) = idle_exit {
        idle_exit.abort();
    }
    served
}

async fn exit_when_idle(handle: GatewayHandle) {
    loop {
        handle.power().idle_exit().await;
        match handle.offline_queue().status().await {
            Ok(status) if status.queued == 0 => {
                info!("idle for power.sleep_on_idle_ms; exiting until the next connection starts the gateway again");
                handle.shutdown();
                return;
            }
            Ok(_) => {} // the sync loop must keep running
            Err(e) => warn!(error = %e, "cannot read the offline queue; staying up"),
        }
    }
}

async fn handle_signals(handle: GatewayHandle, config_path: Option<PathBuf>) {
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("cannot install signal handlers; stopping");
        handle.shutdown();
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM received"); handle.shutdown(); }
            _ = int.recv() => { info!("SIGINT received"); handle.shutdown(); }
            _ = hup.recv() => reload(&handle, config_path.as_deref()),
        }
    }
}

fn reload(handle: &GatewayHandle, path: Option<&Path>) {
    let Some(path) = path else {
        warn!("SIGHUP: running on embedded defaults, no file to reload");
        return;
    };
    systemd::notify_reloading();
    let loaded = load(Some(path))
        .map_err(|e| e.to_string())
        .and_then(|mut config| {
            handle
                .unseal_secrets(&mut config)
                .map_err(|e| e.to_string())?;
            Ok(config)
        });
    match loaded {
        Ok(config) => {
            let report = handle.reload(config);
            info!(
                applied = ?report.applied,
                needs_restart = ?report.needs_restart,
                "configuration reloaded"
            );
            systemd::notify_ready(&format!(
                "reloaded: {} applied, {} need a restart",
                report.applied.len(),
                report.needs_restart.len()
            ));
        }
        Err(e) => {
            handle.reload_rejected();
            error!("configuration reload refused, keeping the running configuration:\n{e}");
            systemd::notify_ready("reload refused: invalid configuration");
        }
    }
}
