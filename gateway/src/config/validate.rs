//! The rules a configuration must satisfy beyond its shape: ranges, URL forms, and keys that
//! only make sense together.

use std::collections::HashSet;
use std::fmt::Display;

use super::{Compression, Config, Routing};

/// One broken rule: the dotted key it is about (`upstreams[1].url`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub message: String,
}

#[derive(Default)]
struct Problems(Vec<Invalid>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Invalid {
            key: key.into(),
            message: message.into(),
        });
    }

    fn range<T: PartialOrd + Display>(&mut self, key: &str, value: T, min: T, max: T) {
        // Written so that NaN (which TOML can spell) is out of every range.
        if !(value >= min && value <= max) {
            self.add(
                key,
                format!("{value} is out of range; allowed {min} to {max}"),
            );
        }
    }

    fn url(&mut self, key: &str, value: &str) {
        let ok = value.parse::<http::Uri>().ok().filter(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
        });
        match ok {
            None => self.add(
                key,
                format!("\"{value}\" is not an http:// or https:// URL"),
            ),
            Some(uri) => self.tls_built_for(key, value, &uri),
        }
    }

    /// An https:// URL the gateway connects to needs a build with TLS.
    fn tls_built_for(&mut self, key: &str, value: &str, uri: &http::Uri) {
        if uri.scheme_str() == Some("https") && !crate::tls::BUILT {
            self.add(
                key,
                format!("\"{value}\" is https://, but {}", crate::tls::NOT_BUILT),
            );
        }
    }

    /// A codec this build has.
    fn compression(&mut self, key: &str, value: Compression) {
        if value == Compression::Zstd && Compression::BEST_BUILT != Compression::Zstd {
            self.add(key, crate::compression::ZSTD_NOT_BUILT);
        }
    }
}

pub(super) fn check(config: &Config) -> Result<(), Vec<Invalid>> {
    let mut p = Problems::default();

    let g = &config.gateway;
    p.range("gateway.max_connections", g.max_connections, 1, 65_535);
    p.range(
        "gateway.request_timeout_ms",
        g.request_timeout_ms,
        100,
        3_600_000,
    );
    p.range("gateway.max_body_bytes", g.max_body_bytes, 1_024, 1 << 30);
    if g.allowed_hosts.is_empty() {
        p.add(
            "gateway.allowed_hosts",
            "must name at least one host (for example \"localhost\")",
        );
    }
    for (i, host) in g.allowed_hosts.iter().enumerate() {
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
            p.add(
                format!("gateway.allowed_hosts[{i}]"),
                format!("\"{host}\" is not a host name"),
            );
        }
    }

    let m = &config.models;
    p.range("models.max_memory_mb", m.max_memory_mb, 16, 1 << 20);
    p.range("models.max_tokens", m.max_tokens, 1, 131_072);
    p.range("models.context_length", m.context_length, 64, 131_072);
    p.range("models.threads", m.threads, 0, 1_024);
    p.range("models.max_queued", m.max_queued, 1, 10_000);
    p.range("models.max_tool_rounds", m.max_tool_rounds, 1, 32);
    p.range("models.cloud_timeout_ms", m.cloud_timeout_ms, 100, 600_000);
    p.range("models.cloud_retries", m.cloud_retries, 0, 10);
    p.range(
        "models.circuit_breaker_failures",
        m.circuit_breaker_failures,
        1,
        1_000,
    );
    p.range(
        "models.circuit_breaker_cooldown_ms",
        m.circuit_breaker_cooldown_ms,
        100,
        3_600_000,
    );
    if m.model_path.is_none() && m.tokenizer_path.is_some() {
        p.add(
            "models.tokenizer_path",
            "is set but models.model_path is not",
        );
    }
    match m.routing {
        Routing::LocalOnly if m.model_path.is_none() => {
            p.add("models.routing", "local_only needs models.model_path");
        }
        Routing::CloudOnly if m.cloud_endpoint.is_none() => {
            p.add("models.routing", "cloud_only needs models.cloud_endpoint");
        }
        _ => {}
    }
    p.range(
        "models.fallback_threshold_ms",
        m.fallback_threshold_ms,
        1,
        600_000,
    );
    if let Some(endpoint) = &m.cloud_endpoint {
        p.url("models.cloud_endpoint", endpoint);
    }
    if m.cloud_api_key.is_some() && m.cloud_endpoint.is_none() {
        p.add(
            "models.cloud_api_key",
            "is set but models.cloud_endpoint is not",
        );
    }

    let o = &config.offline;
    p.range("offline.queue_size", o.queue_size, 1, 10_000_000);
    p.range(
        "offline.sync_interval_seconds",
        o.sync_interval_seconds,
        1,
        86_400,
    );
    p.range("offline.sync_batch_size", o.sync_batch_size, 1, 1_000);
    p.range("offline.keep_results_hours", o.keep_results_hours, 1, 8_760);
    if o.persistence_path.as_os_str().is_empty() {
        p.add("offline.persistence_path", "must not be empty");
    }
    p.compression("offline.compression", o.compression);

    let s = &config.security;
    if s.attestation_required && !s.use_tpm {
        p.add(
            "security.attestation_required",
            "needs security.use_tpm = true",
        );
    }
    if s.use_tpm && s.tpm_device.is_empty() {
        p.add(
            "security.tpm_device",
            "must name a TCTI, for example \"device:/dev/tpmrm0\"",
        );
    }
    if !s.use_tpm {
        for (key, secret) in config.clone().secrets_mut() {
            if secret.sealed_name().is_some() {
                p.add(
                    key,
                    "is a sealed secret, which needs security.use_tpm = true",
                );
            }
        }
    }
    if !s.sandbox {
        for (key, set) in [
            ("security.user", !s.user.is_empty()),
            (
                "security.sandbox_read_paths",
                !s.sandbox_read_paths.is_empty(),
            ),
            (
                "security.sandbox_write_paths",
                !s.sandbox_write_paths.is_empty(),
            ),
        ] {
            if set {
                p.add(key, "needs security.sandbox = true");
            }
        }
    }
    let oauth = &s.oauth;
    if !oauth.authorization_server.is_empty() {
        for (key, url) in [
            (
                "security.oauth.authorization_server",
                &oauth.authorization_server,
            ),
            ("security.oauth.jwks_uri", &oauth.jwks_uri),
            ("security.oauth.resource", &oauth.resource),
        ] {
            if !secure_url(url) {
                p.add(
                    key,
                    format!("\"{url}\" must be an https:// URL (http:// only on localhost)"),
                );
            }
        }
        // The gateway fetches the key set; the other two are names it only compares.
        if let Ok(uri) = oauth.jwks_uri.parse::<http::Uri>() {
            p.tls_built_for("security.oauth.jwks_uri", &oauth.jwks_uri, &uri);
        }
    } else if !oauth.jwks_uri.is_empty() || !oauth.resource.is_empty() {
        p.add(
            "security.oauth.authorization_server",
            "must be set when jwks_uri or resource is",
        );
    }
    if !(8..=16).contains(&s.tpm_pcr) && s.tpm_pcr != 23 {
        p.add(
            "security.tpm_pcr",
            "must be 8 to 16 or 23: PCRs 0-7 belong to the firmware, and 17-22 cannot be extended from the operating system",
        );
    }
    for (i, c) in s.clients.iter().enumerate() {
        let key = |k: &str| format!("security.clients[{i}].{k}");
        if c.name.is_empty() {
            p.add(key("name"), "must not be empty");
        } else if s.clients[..i].iter().any(|other| other.name == c.name) {
            p.add(
                key("name"),
                format!("\"{}\" is used by another client", c.name),
            );
        }
        if !c.oauth_client.is_empty() {
            if !c.token_sha256.is_empty() {
                p.add(
                    key("oauth_client"),
                    "set either token_sha256 (a static token) or oauth_client, not both",
                );
            }
            if !c.scopes.is_empty() {
                p.add(
                    key("scopes"),
                    "an OAuth client's scopes come from its access tokens: leave scopes out",
                );
            }
            if s.oauth.authorization_server.is_empty() {
                p.add(
                    key("oauth_client"),
                    "needs security.oauth.authorization_server",
                );
            }
        } else if c.token_sha256.len() != 64
            || !c.token_sha256.bytes().all(|b| b.is_ascii_hexdigit())
        {
            p.add(
                key("token_sha256"),
                "must be 64 hex digits: the SHA-256 of the token (mcp-gateway hash-token)",
            );
        }
        for scope in c
            .scopes
            .iter()
            .filter(|s| !super::SCOPES.contains(&s.as_str()))
        {
            p.add(
                key("scopes"),
                format!(
                    "unknown scope \"{scope}\"; known: {}",
                    super::SCOPES.join(", ")
                ),
            );
        }
        p.range(
            &key("requests_per_minute"),
            c.requests_per_minute,
            0,
            1_000_000,
        );
        for (list, patterns) in [
            ("tools", &c.tools),
            ("prompts", &c.prompts),
            ("resources", &c.resources),
        ] {
            if patterns
                .iter()
                .any(|t| t.is_empty() || t[..t.len() - 1].contains('*'))
            {
                p.add(
                    key(list),
                    "entries must not be empty; `*` may only end an entry",
                );
            }
        }
    }
    match (&s.tls_cert, &s.tls_key) {
        (Some(_), None) => p.add("security.tls_cert", "is set but security.tls_key is not"),
        (None, Some(_)) => p.add("security.tls_key", "is set but security.tls_cert is not"),
        _ => {}
    }
    if s.tls_cert.is_some() && !crate::tls::BUILT {
        p.add("security.tls_cert", crate::tls::NOT_BUILT);
    }
    if s.tls_client_ca.is_some() && s.tls_cert.is_none() {
        p.add(
            "security.tls_client_ca",
            "mTLS needs security.tls_cert and security.tls_key too",
        );
    }

    let t = &config.telemetry;
    p.range(
        "telemetry.export_interval_seconds",
        t.export_interval_seconds,
        1,
        86_400,
    );
    for (i, endpoint) in t.endpoints.iter().enumerate() {
        p.url(&format!("telemetry.endpoints[{i}]"), endpoint);
    }
    p.compression("telemetry.compression", t.compression);

    let w = &config.power;
    p.range("power.cpu_throttle_percent", w.cpu_throttle_percent, 1, 100);
    p.range("power.sleep_on_idle_ms", w.sleep_on_idle_ms, 0, 86_400_000);
    p.range(
        "power.poll_interval_seconds",
        w.poll_interval_seconds,
        1,
        3_600,
    );
    p.range("power.battery_low_percent", w.battery_low_percent, 1, 99);
    p.range(
        "power.thermal_margin_celsius",
        w.thermal_margin_celsius,
        1,
        50,
    );
    if w.battery_critical_percent >= w.battery_low_percent {
        p.add(
            "power.battery_critical_percent",
            format!(
                "{} must be below power.battery_low_percent ({})",
                w.battery_critical_percent, w.battery_low_percent
            ),
        );
    }
    if !w.cpufreq_request.is_absolute() {
        p.add(
            "power.cpufreq_request",
            "must be an absolute path, for example \"/run/mcp-edge/cpufreq-request\"",
        );
    }
    if w.exit_on_idle && w.sleep_on_idle_ms == 0 {
        p.add(
            "power.exit_on_idle",
            "needs power.sleep_on_idle_ms above 0 (how long idle means)",
        );
    }

    if !config.device.system_root.is_absolute() {
        p.add(
            "device.system_root",
            "must be an absolute path, for example \"/\"",
        );
    }

    let memory = &config.memory;
    p.range("memory.http_buffers_kb", memory.http_buffers_kb, 1, 4 << 20);
    if memory.http_buffers_kb.saturating_mul(1024) < g.max_body_bytes {
        p.add(
            "memory.http_buffers_kb",
            format!(
                "{} KiB cannot hold one request of gateway.max_body_bytes ({} bytes)",
                memory.http_buffers_kb, g.max_body_bytes
            ),
        );
    }
    p.range(
        "memory.telemetry_buffer_kb",
        memory.telemetry_buffer_kb,
        0,
        4 << 20,
    );

    let a = &config.analytics;
    p.range(
        "analytics.sample_interval_ms",
        a.sample_interval_ms,
        100,
        86_400_000,
    );
    match &a.alert_url {
        Some(url) => p.url("analytics.alert_url", url),
        None if a.alert_token.is_some() => p.add(
            "analytics.alert_token",
            "is set but analytics.alert_url is not",
        ),
        None => {}
    }
    let mut streams = HashSet::new();
    for (i, s) in a.streams.iter().enumerate() {
        let key = |k: &str| format!("analytics.streams[{i}].{k}");
        if s.name.is_empty()
            || !s
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            p.add(
                key("name"),
                format!(
                    "\"{}\" is not a stream name: use letters, digits, _ and -",
                    s.name
                ),
            );
        } else if !streams.insert(s.name.as_str()) {
            p.add(key("name"), format!("\"{}\" names two streams", s.name));
        }
        if let Err(e) = s.sensor.parse::<crate::analytics::Sensor>() {
            p.add(key("sensor"), e);
        }
        p.range(&key("threshold"), s.threshold, 1.0, 1_000.0);
        p.range(&key("warmup_samples"), s.warmup_samples, 2, 100_000);
        p.range(&key("smoothing"), s.smoothing, 0.001, 1.0);
        p.range(&key("min_deviation"), s.min_deviation, 0.0, 1e12);
    }

    let mut names = HashSet::new();
    for (i, u) in config.upstreams.iter().enumerate() {
        let key = |k: &str| format!("upstreams[{i}].{k}");
        let name_ok = !u.name.is_empty()
            && u.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            p.add(
                key("name"),
                "must be non-empty and use only letters, digits, '-' and '_'",
            );
        } else if !names.insert(u.name.as_str()) {
            p.add(
                key("name"),
                format!("\"{}\" is used by another upstream", u.name),
            );
        }
        match (&u.command, &u.url) {
            (None, None) => p.add(key("command"), "set either command (stdio) or url (HTTP)"),
            (Some(_), Some(_)) => p.add(
                key("url"),
                "set either command (stdio) or url (HTTP), not both",
            ),
            (None, Some(url)) => p.url(&key("url"), url),
            (Some(command), None) if command.is_empty() => {
                p.add(key("command"), "must not be empty")
            }
            (Some(_), None) => {}
        }
        if u.url.is_none() {
            let http_only = [
                ("headers", !u.headers.is_empty()),
                ("bearer_token", u.bearer_token.is_some()),
                ("tls_client_cert", u.tls_client_cert.is_some()),
                ("deferrable", u.deferrable),
            ];
            for (k, _) in http_only.iter().filter(|(_, set)| *set) {
                p.add(key(k), "only applies to url upstreams");
            }
        }
        if u.tls_client_cert.is_some() != u.tls_client_key.is_some() {
            p.add(
                key("tls_client_cert"),
                "tls_client_cert and tls_client_key go together",
            );
        }
        if u.tls_client_cert.is_some() {
            if !crate::tls::BUILT {
                p.add(key("tls_client_cert"), crate::tls::NOT_BUILT);
            } else if u
                .url
                .as_deref()
                .is_some_and(|url| !url.starts_with("https://"))
            {
                p.add(
                    key("tls_client_cert"),
                    "a client certificate is only sent over TLS: the url must be https://",
                );
            }
        }
        if let Some(prefix) = &u.prefix {
            if prefix.is_empty() || prefix.contains(char::is_whitespace) {
                p.add(key("prefix"), "must be non-empty and contain no spaces");
            }
        }
        p.range(&key("timeout_ms"), u.timeout_ms, 0, 3_600_000);
        p.range(
            &key("ping_interval_seconds"),
            u.ping_interval_seconds,
            0,
            86_400,
        );
    }

    if p.0.is_empty() {
        Ok(())
    } else {
        Err(p.0)
    }
}

/// An https URL, or http on the loopback interface (a test or a local proxy).
fn secure_url(url: &str) -> bool {
    let loopback = ["http://localhost", "http://127.0.0.1", "http://[::1]"];
    url.starts_with("https://")
        || loopback.iter().any(|prefix| {
            url.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        })
}
