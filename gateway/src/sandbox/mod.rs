//! The gateway confining itself (`[security] sandbox = true`), for images whose init does not
//! (Buildroot with BusyBox init) and as a second layer under a hardened systemd unit. While the
//! process still has one thread, after its socket is bound and before anything serves:
//!
//! 1. started as root, it drops the capability bounding set and becomes `security.user`;
//! 2. `no_new_privs`, and every capability set cleared;
//! 3. Landlock limits the file system to what the configuration names ([`landlock`]);
//! 4. a seccomp allow-list refuses every other system call with `EPERM` ([`seccomp`]).
//!
//! Then it checks that each holds (listing `/` and `sched_setaffinity` must be refused) and
//! reports what is in force. Children (stdio upstreams) inherit all of it.

mod landlock;
mod seccomp;

use std::path::Path;

use caps::CapSet;
use nix::unistd::{Gid, Uid, User};

use crate::config::Config;

/// What is in force, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub user: String,
    pub capabilities: String,
    pub landlock: String,
    pub seccomp: String,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "user {}; no_new_privs; capabilities {}; Landlock {}; seccomp {}",
            self.user, self.capabilities, self.landlock, self.seccomp
        )
    }
}

/// Why the sandbox could not be entered; the gateway does not start without it.
#[derive(Debug, thiserror::Error)]
#[error("sandbox: {0} (security.sandbox = true)")]
pub struct SandboxError(String);

fn fail(what: &str) -> impl Fn(&dyn std::fmt::Display) -> SandboxError + '_ {
    move |e| SandboxError(format!("{what}: {e}"))
}

/// Enters the sandbox. Must run while the process has a single thread (Landlock and the
/// privilege change apply to the calling thread and what it starts later).
pub fn enter(config: &Config, config_file: Option<&Path>) -> Result<Report, SandboxError> {
    let user = change_user(&config.security.user)?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| fail("no_new_privs")(&e))?;
    let capabilities = clear_capabilities()?;
    let landlock = landlock::restrict(config, config_file)?;
    let seccomp = seccomp::install()?;
    Ok(Report {
        user,
        capabilities,
        landlock,
        seccomp,
    })
}

/// As root with `user` set: empties the bounding set (while CAP_SETPCAP is still held), then
/// takes the user's group and uid (glibc applies it to every thread). Otherwise stays who it
/// is; root without `user` is reported, since everything after still applies.
fn change_user(user: &str) -> Result<String, SandboxError> {
    let uid = Uid::current();
    if !uid.is_root() {
        return Ok(format!("uid {uid} (not started as root)"));
    }
    if user.is_empty() {
        return Ok("root (security.user is empty: set it to drop root after binding)".into());
    }
    let entry = User::from_name(user)
        .map_err(|e| fail("looking up security.user")(&e))?
        .ok_or_else(|| SandboxError(format!("security.user {user:?} does not exist")))?;
    drop_bounding_set()?;
    let gid: Gid = entry.gid;
    nix::unistd::setgroups(&[gid]).map_err(|e| fail("setgroups")(&e))?;
    nix::unistd::setgid(gid).map_err(|e| fail("setgid")(&e))?;
    nix::unistd::setuid(entry.uid).map_err(|e| fail("setuid")(&e))?;
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(SandboxError("root could be regained after setuid".into()));
    }
    Ok(format!("{user} (uid {}, gid {gid})", entry.uid))
}

fn drop_bounding_set() -> Result<(), SandboxError> {
    for capability in
        caps::read(None, CapSet::Bounding).map_err(|e| fail("reading capabilities")(&e))?
    {
        caps::drop(None, CapSet::Bounding, capability)
            .map_err(|e| fail("dropping the bounding set")(&e))?;
    }
    Ok(())
}

/// Clears the effective, permitted, inheritable and ambient sets (those that hold anything:
/// under systemd's filter `capset` itself is refused, and there they are empty already); the
/// bounding set too when that is still possible (it needs CAP_SETPCAP, which an unprivileged
/// start does not have, and with no_new_privs nothing can be gained from it).
fn clear_capabilities() -> Result<String, SandboxError> {
    let bounding_emptied = drop_bounding_set().is_ok();
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        let held = caps::read(None, set).map_err(|e| fail("reading capabilities")(&e))?;
        if !held.is_empty() {
            caps::clear(None, set).map_err(|e| fail("clearing capabilities")(&e))?;
        }
    }
    Ok(if bounding_emptied {
        "none (bounding set empty)".into()
    } else {
        "none (bounding set kept: no CAP_SETPCAP to empty it)".into()
    })
}
