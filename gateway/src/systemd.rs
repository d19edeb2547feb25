//! systemd integration: readiness and status notifications, the watchdog, and sockets handed
//! over by a `.socket` unit. Every call is a no-op when systemd did not ask for it.

use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use sd_notify::NotifyState;
use tracing::{debug, warn};

/// The `FileDescriptorName=` the gateway looks for when a socket unit passes several sockets.
pub const HTTP_SOCKET_NAME: &str = "http";

/// Why a socket passed by systemd cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ListenFdError {
    /// `LISTEN_FDS` / `LISTEN_PID` are malformed.
    #[error("socket activation variables are malformed: {0}")]
    Environment(std::io::Error),
    /// Several sockets were passed and none is named `http`.
    #[error("systemd passed {0} sockets and none is named \"http\"; set FileDescriptorName=http in the .socket unit")]
    Ambiguous(usize),
    /// The passed descriptor is not a listening TCP socket.
    #[error("file descriptor {fd} from systemd is not a listening TCP socket ({reason}); use ListenStream= in the .socket unit")]
    NotListening { fd: RawFd, reason: String },
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, "could not notify systemd");
    }
}

/// `READY=1` and a status line; sent once listeners are bound and subsystems are up.
pub fn notify_ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `STOPPING=1` and a status line.
pub fn notify_stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// `RELOADING=1` with the monotonic timestamp `Type=notify-reload` asks for.
pub fn notify_reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading configuration"),
        ]),
        Err(e) => warn!(error = %e, "could not read the monotonic clock for RELOADING=1"),
    }
}

/// Takes the listening socket passed by systemd socket activation, if any.
///
/// Call before any thread is started: it unsets `LISTEN_*` so that children do not inherit
/// them, and that is only sound while the process is single-threaded.
pub fn take_listener() -> Result<Option<TcpListener>, ListenFdError> {
    let fds: Vec<(RawFd, String)> = sd_notify::listen_fds_with_names()
        .map_err(ListenFdError::Environment)?
        .collect();
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(name);
    }
    let fd = match fds.as_slice() {
        [] => return Ok(None),
        [(fd, _)] => *fd,
        many => match many.iter().find(|(_, name)| name == HTTP_SOCKET_NAME) {
            Some((fd, _)) => *fd,
            None => return Err(ListenFdError::Ambiguous(many.len())),
        },
    };
    // SAFETY: systemd passed `fd` to this process for it to own (sd_listen_fds(3)); the
    // variables that named it are unset above, so nothing else in the process takes it again.
    #[allow(unsafe_code)]
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    check_listening_stream(&owned).map_err(|reason| ListenFdError::NotListening { fd, reason })?;
    let listener = TcpListener::from(owned);
    // Only IPv4 and IPv6 sockets have an address std can read; a Unix socket fails here.
    listener
        .local_addr()
        .map_err(|e| ListenFdError::NotListening {
            fd,
            reason: format!("not a TCP socket: {e}"),
        })?;
    Ok(Some(listener))
}

fn check_listening_stream(fd: &OwnedFd) -> Result<(), String> {
    use nix::sys::socket::{getsockopt, sockopt, SockType};
    let kind = getsockopt(fd, sockopt::SockType).map_err(|e| e.to_string())?;
    if kind != SockType::Stream {
        return Err(format!("socket type {kind:?}"));
    }
    if !getsockopt(fd, sockopt::AcceptConn).map_err(|e| e.to_string())? {
        return Err("not listening".into());
    }
    Ok(())
}

/// Starts the watchdog task when systemd set `WATCHDOG_USEC` for this process.
///
/// Every half period it proves the runtime is not wedged: a freshly spawned task must be
/// scheduled on a worker and finish within a quarter period. Only then is `WATCHDOG=1` sent,
/// so a runtime whose workers are all blocked stops pinging and systemd restarts the service.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let timeout = sd_notify::watchdog_enabled()?;
    let period = timeout / 2;
    debug!(period_ms = period.as_millis() as u64, "watchdog enabled");
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match tokio::time::timeout(period / 2, tokio::spawn(async {})).await {
                Ok(Ok(())) => send(&[NotifyState::Watchdog]),
                _ => warn!("runtime probe did not complete; withholding the watchdog ping"),
            }
        }
    }))
}
