//! SIGHUP: which settings a running gateway takes over, and which wait for a restart.

use crate::config::Config;

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
        ];
        let restart = [
            ("gateway.bind_address", og.bind_address != ng.bind_address),
            (
                "gateway.max_connections",
                og.max_connections != ng.max_connections,
            ),
            ("models", old.models != new.models),
            ("offline", old.offline != new.offline),
            ("security", old.security != new.security),
            (
                "telemetry.export_interval_seconds",
                ot.export_interval_seconds != nt.export_interval_seconds,
            ),
            ("telemetry.compression", ot.compression != nt.compression),
            ("telemetry.endpoints", ot.endpoints != nt.endpoints),
            ("power", old.power != new.power),
            ("device", old.device != new.device),
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

/// The configuration in effect after a reload: `current` with the live keys taken from `new`.
pub(super) fn apply_live(current: &Config, new: Config) -> Config {
    let mut effective = current.clone();
    effective.gateway.request_timeout_ms = new.gateway.request_timeout_ms;
    effective.gateway.max_body_bytes = new.gateway.max_body_bytes;
    effective.gateway.allowed_hosts = new.gateway.allowed_hosts;
    effective.telemetry.enabled = new.telemetry.enabled;
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
    fn identical_configs_change_nothing() {
        let report = ReloadReport::between(&Config::default(), &Config::default());
        assert_eq!(report, ReloadReport::default());
    }
}
