//! SIGHUP: which settings a running gateway takes over, and which wait for a restart.

use crate::config::{Config, SecurityConfig};

/// What a reload changed: keys applied at once, and keys (or whole sections) that differ but
/// keep their running value until the gateway restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    pub applied: Vec<&'static str>,
    pub needs_restart: Vec<&'static str>,
}

impl ReloadReport {
    pub(super) fn between(old: &Config, new: &Config) -> Self {
        let (og, ng) = (&old.gateway, &new.gateway);
        let (ot, nt) = (&old.telemetry, &new.telemetry);
        let live = [
            (
                "gateway.request_timeout_ms",
                og.request_timeout_ms != ng.request_timeout_ms,
            ),
            (
                "gateway.max_body_bytes",
                og.max_body_bytes != ng.max_body_bytes,
            ),
            (
                "gateway.allowed_hosts",
                og.allowed_hosts != ng.allowed_hosts,
            ),
            ("telemetry.enabled", ot.enabled != nt.enabled),
            ("memory", old.memory != new.memory),
            (
                "security.clients",
                old.security.clients != new.security.clients,
            ),
        ];
        let restart = [
            ("gateway.bind_address", og.bind_address != ng.bind_address),
            (
                "gateway.max_connections",
                og.max_connections != ng.max_connections,
            ),
            ("models", old.models != new.models),
            ("offline", old.offline != new.offline),
            (
                "security",
                security_needs_restart(&old.security, &new.security),
            ),
            (
                "telemetry.export_interval_seconds",
                ot.export_interval_seconds != nt.export_interval_seconds,
            ),
            ("telemetry.compression", ot.compression != nt.compression),
            ("telemetry.endpoints", ot.endpoints != nt.endpoints),
            ("power", old.power != new.power),
            ("device", old.device != new.device),
            ("analytics", old.analytics != new.analytics),
            ("upstreams", old.upstreams != new.upstreams),
        ];
        let changed = |keys: &[(&'static str, bool)]| {
            keys.iter().filter(|(_, c)| *c).map(|(k, _)| *k).collect()
        };
        Self {
            applied: changed(&live),
            needs_restart: changed(&restart),
        }
    }
}

/// Whether `[security]` changed in a way only a restart applies: TLS turned on or off, or a
/// TPM setting (clients are live). While TLS stays on, its files (client CA included, so also turning mutual TLS
/// on or off) are read again on every reload.
fn security_needs_restart(old: &SecurityConfig, new: &SecurityConfig) -> bool {
    let without_files = |s: &SecurityConfig| SecurityConfig {
        tls_cert: s.tls_cert.as_ref().map(|_| Default::default()),
        tls_key: s.tls_key.as_ref().map(|_| Default::default()),
        tls_client_ca: None,
        clients: Vec::new(),
        ..s.clone()
    };
    without_files(old) != without_files(new)
}

/// The configuration in effect after a reload: `current` with the live keys taken from `new`.
pub(super) fn apply_live(current: &Config, new: Config) -> Config {
    let mut effective = current.clone();
    effective.gateway.request_timeout_ms = new.gateway.request_timeout_ms;
    effective.gateway.max_body_bytes = new.gateway.max_body_bytes;
    effective.gateway.allowed_hosts = new.gateway.allowed_hosts;
    effective.telemetry.enabled = new.telemetry.enabled;
    effective.security.clients = new.security.clients;
    effective.memory = new.memory;
    effective
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_changes_into_live_and_restart() {
        let old = Config::default();
        let mut new = old.clone();
        new.gateway.max_body_bytes = 2048;
        new.gateway.bind_address = "127.0.0.1:9999".parse().unwrap();
        new.power.cpu_throttle_percent = 50;
        let report = ReloadReport::between(&old, &new);
        assert_eq!(report.applied, ["gateway.max_body_bytes"]);
        assert_eq!(report.needs_restart, ["gateway.bind_address", "power"]);

        let effective = apply_live(&old, new);
        assert_eq!(effective.gateway.max_body_bytes, 2048);
        assert_eq!(effective.gateway.bind_address, old.gateway.bind_address);
        assert_eq!(effective.power, old.power);
    }

    #[test]
    fn tls_files_reload_live_but_turning_tls_on_needs_a_restart() {
        let plain = Config::default();
        let mut tls = plain.clone();
        tls.security.tls_cert = Some("/etc/a.pem".into());
        tls.security.tls_key = Some("/etc/a.key".into());
        let mut renewed = tls.clone();
        renewed.security.tls_cert = Some("/etc/b.pem".into());
        assert!(ReloadReport::between(&tls, &renewed)
            .needs_restart
            .is_empty());
        assert_eq!(
            ReloadReport::between(&plain, &tls).needs_restart,
            ["security"]
        );
        let mut mtls = tls.clone();
        mtls.security.tls_client_ca = Some("/etc/ca.pem".into());
        assert!(ReloadReport::between(&tls, &mtls).needs_restart.is_empty());
    }

    #[test]
    fn identical_configs_change_nothing() {
        let report = ReloadReport::between(&Config::default(), &Config::default());
        assert_eq!(report, ReloadReport::default());
    }
}
