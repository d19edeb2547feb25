//! The file system the gateway may still reach under Landlock: code and system configuration
//! read-only, procfs and sysfs for the device tools, its state read-write, and the files and
//! devices its configuration names. Paths that do not exist are left out.

use std::path::{Path, PathBuf};

use landlock::{
    path_beneath_rules, Access, AccessFs, BitFlags, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, ABI,
};

use super::{fail, SandboxError};
use crate::config::Config;

/// The newest Landlock ABI the rules are written for; an older kernel enforces what it knows.
const ABI_TARGET: ABI = ABI::V3;

/// Read and execute: shared libraries (libtss2 loads its TCTI with dlopen), the programs of
/// stdio upstreams.
const CODE: [&str; 5] = ["/usr", "/lib", "/lib64", "/bin", "/sbin"];
/// Read: DNS and TLS trust configuration, users, the gateway's own configuration; procfs and
/// sysfs for the device tools and `/proc/self/exe` for the measurement.
const SYSTEM: [&str; 5] = ["/etc", "/proc", "/sys", "/dev/urandom", "/dev/random"];

/// The paths of `config` (and the file it was read from, for reloads), as (read-only,
/// read-write) lists.
pub fn paths(config: &Config, config_file: Option<&Path>) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let s = &config.security;
    let mut read: Vec<PathBuf> = SYSTEM.iter().map(PathBuf::from).collect();
    // The device tools read /etc, /proc, /sys and /usr under it; a tree other than / (a
    // fixture, a mounted image) is read as a whole, / itself never.
    if config.device.system_root != Path::new("/") {
        read.push(config.device.system_root.clone());
    }
    read.extend(config_file.map(Path::to_path_buf));
    // Its own executable, which the TPM measurement reads through /proc/self/exe.
    read.extend(std::env::current_exe().ok());
    // The model's directory: a tokenizer.json beside it is found there.
    let model_dir = config.models.model_path.as_deref().and_then(Path::parent);
    read.extend(model_dir.map(Path::to_path_buf));
    read.extend(config.models.tokenizer_path.clone());
    read.extend([s.sealed_dir.clone(), s.firmware_event_log.clone()]);
    read.extend(
        [&s.tls_cert, &s.tls_key, &s.tls_client_ca]
            .into_iter()
            .flatten()
            .cloned(),
    );
    read.extend(s.sandbox_read_paths.iter().cloned());

    let mut write = vec![
        crate::config::default_state_dir(),
        PathBuf::from("/dev/null"),
    ];
    write.extend(
        config
            .offline
            .persistence_path
            .parent()
            .map(Path::to_path_buf),
    );
    if let Some(device) = s.tpm_device.strip_prefix("device:") {
        write.push(PathBuf::from(device));
    }
    if config.power.cpufreq == crate::config::CpufreqControl::Helper {
        write.extend(config.power.cpufreq_request.parent().map(Path::to_path_buf));
    }
    write.extend(s.sandbox_write_paths.iter().cloned());
    (read, write)
}

/// Restricts this thread and what it starts to [`paths`], then checks that `/` can no longer
/// be listed.
pub fn restrict(config: &Config, config_file: Option<&Path>) -> Result<String, SandboxError> {
    // A rule needs the path to exist; a state directory made later would be out of reach.
    let state = crate::config::default_state_dir();
    if !state.is_dir() {
        return Err(SandboxError(format!(
            "the state directory {} does not exist; create it, owned by the gateway's user (systemd's StateDirectory= does)",
            state.display()
        )));
    }
    let (read, write) = paths(config, config_file);
    let read_only: BitFlags<AccessFs> = AccessFs::ReadFile | AccessFs::ReadDir;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI_TARGET))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(CODE, AccessFs::from_read(ABI_TARGET))))
        .and_then(|r| r.add_rules(path_beneath_rules(&read, read_only)))
        .and_then(|r| r.add_rules(path_beneath_rules(&write, AccessFs::from_all(ABI_TARGET))))
        .and_then(|r| r.restrict_self())
        .map_err(|e| fail("Landlock")(&e))?;
    let listing_root = std::fs::read_dir("/");
    match (status.ruleset, listing_root) {
        (RulesetStatus::NotEnforced, _) => {
            Ok("not enforced (this kernel has no Landlock, or it is not in its lsm= list)".into())
        }
        (_, Ok(_)) => Err(SandboxError(
            "Landlock reports a ruleset in force, yet `/` can still be listed".into(),
        )),
        (RulesetStatus::FullyEnforced, Err(_)) => Ok(format!(
            "fully enforced ({} read-only and {} read-write paths; listing / denied)",
            read.len(),
            write.len()
        )),
        (RulesetStatus::PartiallyEnforced, Err(_)) => Ok(format!(
            "partially enforced (an older kernel ABI; {} read-only and {} read-write paths; listing / denied)",
            read.len(),
            write.len()
        )),
    }
}
