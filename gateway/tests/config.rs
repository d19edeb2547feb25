//! Configuration errors name the file, line, column and key; valid files load; the builder
//! follows the same rules.

use std::path::Path;
use std::process::Command;

use mcp_edge_gateway::config::{Compression, Config, ConfigError};

use crate::common;
use crate::common::BIN;

fn problem(text: &str) -> String {
    match Config::from_toml(text, "edge.toml") {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(e) => e.to_string(),
    }
}

/// Runs `mcp-gateway check-config` on `text` with the given environment.
fn check_config(text: &str, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcp-edge.toml");
    std::fs::write(&path, text).unwrap();
    let mut command = Command::new(BIN);
    command
        .arg("check-config")
        .arg(&path)
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    let stderr =
        String::from_utf8_lossy(&output.stderr).replace(&path.display().to_string(), "FILE");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn no_file_means_embedded_defaults() {
    let config = Config::default();
    assert_eq!(config.gateway.bind_address.to_string(), "127.0.0.1:8080");
    assert!(config.validate().is_ok());
    assert_eq!(Config::from_toml("", "empty.toml").unwrap(), config);
}

#[test]
fn missing_environment_variable_is_named_with_its_position() {
    let text = "[models]\ncloud_endpoint = \"https://llm.example.net/v1\"\ncloud_api_key = \"${EDGE_TEST_UNSET_TOKEN}\"\n";
    let (code, _, stderr) = check_config(text, &[]);
    assert_eq!(code, Some(78));
    assert_eq!(
        stderr.trim(),
        "FILE:3:17: models.cloud_api_key: environment variable `EDGE_TEST_UNSET_TOKEN` is not set (referenced as `${EDGE_TEST_UNSET_TOKEN}`)"
    );

    let (code, stdout, stderr) = check_config(text, &[("EDGE_TEST_UNSET_TOKEN", "s3cret")]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("configuration is valid"));
}

#[test]
fn interpolation_fills_strings_from_the_environment() {
    let (code, _, stderr) = check_config(
        "[gateway]\nbind_address = \"${EDGE_BIND}\"\nallowed_hosts = [\"${EDGE_NAME:-edge}.local\"]\n",
        &[("EDGE_BIND", "not-an-address")],
    );
    assert_eq!(code, Some(78));
    assert!(
        stderr.contains(
            "FILE:2:16: gateway.bind_address: \"not-an-address\" is not a socket address"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = check_config(
        "[gateway]\nbind_address = \"${EDGE_BIND}\"\n",
        &[("EDGE_BIND", "0.0.0.0:9000")],
    );
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn unknown_key_is_rejected_with_position() {
    let message = problem("[gateway]\nmax_connections = 10\nmax_conections = 10\n");
    assert!(
        message.starts_with("edge.toml:3:1: gateway.max_conections: unknown field `max_conections`, expected one of"),
        "{message}"
    );
    let message = problem("[gatway]\n");
    assert!(
        message.starts_with("edge.toml:1:2: gatway: unknown field `gatway`"),
        "{message}"
    );
    let message = problem("[[upstreams]]\nname = \"a\"\ncommand = \"x\"\n[[upstreams]]\nname = \"b\"\ncomand = \"y\"\n");
    assert!(
        message.starts_with("edge.toml:6:1: upstreams[1].comand: unknown field"),
        "{message}"
    );
}

#[test]
fn wrong_type_is_rejected_with_position() {
    let message = problem("[gateway]\nmax_connections = \"many\"\n");
    assert_eq!(
        message,
        "edge.toml:2:19: gateway.max_connections: invalid type: string \"many\", expected u32"
    );
    let message = problem("[offline]\ncompression = \"gzip\"\n");
    assert!(
        message.starts_with("edge.toml:2:15: offline.compression: unknown variant `gzip`"),
        "{message}"
    );
    let message = problem("[power]\ncpu_throttle_percent = 300\n");
    assert!(
        message.starts_with("edge.toml:2:24: power.cpu_throttle_percent:"),
        "{message}"
    );
}

#[test]
fn out_of_range_and_inconsistent_values_are_all_reported() {
    let text = "[gateway]\nmax_connections = 0\nmax_body_bytes = 10\n\n[security]\ntls_key = \"/etc/mcp/key.pem\"\n";
    let message = problem(text);
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(
        lines,
        [
            "edge.toml:2:19: gateway.max_connections: 0 is out of range; allowed 1 to 65535",
            "edge.toml:3:18: gateway.max_body_bytes: 10 is out of range; allowed 1024 to 1073741824",
            "edge.toml:6:11: security.tls_key: is set but security.tls_cert is not",
        ]
    );
}

#[test]
fn upstream_rules_point_at_the_upstream() {
    let text = "[[upstreams]]\nname = \"a\"\ncommand = \"x\"\n\n[[upstreams]]\nname = \"a\"\nurl = \"ftp://x\"\nping_interval_seconds = 100000\n";
    let message = problem(text);
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(
        lines,
        [
            "edge.toml:6:8: upstreams[1].name: \"a\" is used by another upstream",
            "edge.toml:7:7: upstreams[1].url: \"ftp://x\" is not an http:// or https:// URL",
            "edge.toml:8:25: upstreams[1].ping_interval_seconds: 100000 is out of range; allowed 0 to 86400",
        ]
    );
}

#[test]
fn only_remote_upstreams_can_be_deferrable() {
    let text = "[[upstreams]]\nname = \"local\"\ncommand = \"x\"\ndeferrable = true\n";
    assert_eq!(
        problem(text),
        "edge.toml:4:14: upstreams[0].deferrable: only applies to url upstreams"
    );
}

#[test]
fn client_tokens_are_digests_and_scopes_are_known() {
    let text = "[[security.clients]]\nname = \"app\"\ntoken_sha256 = \"secret\"\nscopes = [\"everything\"]\n";
    let message = problem(text);
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(
        lines,
        [
            "edge.toml:3:16: security.clients[0].token_sha256: must be 64 hex digits: the SHA-256 of the token (mcp-gateway hash-token)",
            "edge.toml:4:10: security.clients[0].scopes: unknown scope \"everything\"; known: completions, mcp, queue, admin, metrics, attestation, power, *",
        ]
    );
}

#[test]
fn an_oauth_client_entry_takes_its_scopes_from_the_tokens() {
    let text = "[[security.clients]]\nname = \"display\"\noauth_client = \"line-display\"\ntoken_sha256 = \"x\"\nscopes = [\"mcp\"]\n";
    let message = problem(text);
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(
        lines,
        [
            "edge.toml:3:16: security.clients[0].oauth_client: set either token_sha256 (a static token) or oauth_client, not both",
            "edge.toml:5:10: security.clients[0].scopes: an OAuth client's scopes come from its access tokens: leave scopes out",
            "edge.toml:3:16: security.clients[0].oauth_client: needs security.oauth.authorization_server",
        ]
    );
}

#[test]
fn analytics_streams_are_checked_where_they_are_written() {
    let text = "[analytics]\nalert_token = \"t\"\n\n[[analytics.streams]]\nname = \"cpu\"\nsensor = \"thermal/cpu-thermal\"\n\n[[analytics.streams]]\nname = \"cpu\"\nsensor = \"gpio/17\"\nthreshold = nan\nsmoothing = 0\n";
    let message = problem(text);
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(
        lines,
        [
            "edge.toml:2:15: analytics.alert_token: is set but analytics.alert_url is not",
            "edge.toml:9:8: analytics.streams[1].name: \"cpu\" names two streams",
            "edge.toml:10:10: analytics.streams[1].sensor: \"gpio/17\" is not a sensor; use thermal/ZONE, hwmon/CHIP/SENSOR or iio/DEVICE/CHANNEL (as the device_sensors tool names them)",
            "edge.toml:11:13: analytics.streams[1].threshold: NaN is out of range; allowed 1 to 1000",
            "edge.toml:12:13: analytics.streams[1].smoothing: 0 is out of range; allowed 0.001 to 1",
        ]
    );
}

#[test]
fn the_http_buffers_must_hold_one_request() {
    assert_eq!(
        problem("[gateway]\nmax_body_bytes = 4096\n[memory]\nhttp_buffers_kb = 2\n"),
        "edge.toml:4:19: memory.http_buffers_kb: 2 KiB cannot hold one request of gateway.max_body_bytes (4096 bytes)"
    );
}

#[test]
fn syntax_errors_have_a_position() {
    let message = problem("[gateway]\nmax_connections = = 3\n");
    assert!(message.starts_with("edge.toml:2:19: "), "{message}");
}

#[test]
fn the_application_pcr_is_one_the_operating_system_may_extend() {
    assert_eq!(
        problem("[security]\ntpm_pcr = 7\n"),
        "edge.toml:2:11: security.tpm_pcr: must be 8 to 16 or 23: PCRs 0-7 belong to the firmware, \
         and 17-22 cannot be extended from the operating system"
    );
    assert_eq!(
        problem("[security]\nattestation_required = true\n"),
        "edge.toml:2:24: security.attestation_required: needs security.use_tpm = true"
    );
}

#[test]
fn a_client_certificate_towards_an_upstream_needs_https() {
    let upstream = |url: &str| {
        format!("[[upstreams]]\nname = \"fleet\"\nurl = \"{url}\"\ntls_client_cert = \"/etc/mcp/c.pem\"\ntls_client_key = \"/etc/mcp/k.pem\"\n")
    };
    let (code, _, stderr) = check_config(&upstream("https://fleet.example.net/mcp"), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = check_config(&upstream("http://fleet.example.net/mcp"), &[]);
    assert_eq!(code, Some(78));
    assert!(
        stderr.contains("FILE:4:19: upstreams[0].tls_client_cert: a client certificate is only sent over TLS: the url must be https://"),
        "{stderr}"
    );
}

#[test]
fn unreadable_file_is_reported() {
    let output = Command::new(BIN)
        .args(["check-config", "/nonexistent/mcp-edge.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read configuration file /nonexistent/mcp-edge.toml"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_broken_file_with_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcp-edge.toml");
    std::fs::write(&path, "[gateway]\nrequest_timeout_ms = 5\n").unwrap();
    let output = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "{}:2:22: gateway.request_timeout_ms: 5 is out of range",
        path.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn the_documented_example_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/mcp-edge.example.toml");
    let (code, _, stderr) = check_config(&std::fs::read_to_string(&example).unwrap(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let config = Config::from_file(&example).unwrap();
    assert_eq!(config.upstreams.len(), 2);
    assert_eq!(config.offline.compression, Compression::Zstd);
}

#[test]
fn builder_applies_the_same_rules() {
    let config = Config::builder()
        .local_model("/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        .cloud_fallback("https://llm.example.net/v1", Some("k".into()))
        .offline_queue_size(500)
        .build()
        .unwrap();
    assert_eq!(
        config.models.local_model.as_deref(),
        Some("SmolLM2-135M-Instruct.Q4_1")
    );
    assert_eq!(config.offline.queue_size, 500);
    assert_eq!(
        format!("{:?}", config.models.cloud_api_key),
        "Some(Secret(<redacted>))"
    );

    let error = Config::builder()
        .offline_queue_size(0)
        .cloud_fallback("mqtt://x", None)
        .build()
        .unwrap_err();
    let ConfigError::Invalid(problems) = &error else {
        panic!("{error}")
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["models.cloud_endpoint", "offline.queue_size"]);
    assert!(
        error
            .to_string()
            .starts_with("Config::builder(): models.cloud_endpoint:"),
        "{error}"
    );
}

#[test]
fn library_serves_what_the_builder_made() {
    use mcp_edge_gateway::Gateway;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        let config = Config::builder()
            .bind_address("127.0.0.1:0".parse().unwrap())
            .offline_queue_path(state.path().join("queue.sqlite"))
            .build()
            .unwrap();
        let gateway = Gateway::new(config).unwrap();
        let handle = gateway.handle();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = tokio::spawn(gateway.serve_listener(listener));
        let response = tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            common::send(
                &mut stream,
                "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
        })
        .await
        .unwrap();
        assert_eq!(response.status, 200);
        // The offline queue through the library: stored durably, then reported.
        let queue = handle.offline_queue();
        let id = queue
            .queue_for_sync(
                "completion",
                "cloud",
                serde_json::json!({ "from": "library" }),
            )
            .await
            .unwrap();
        assert_eq!(queue.status().await.unwrap().queued, 1);
        assert_eq!(queue.entry(&id).await.unwrap().unwrap().state, "queued");
        // Memory limits through the library: set live, reported, and refused when too small.
        use mcp_edge_gateway::memory::MemoryLimits;
        let limits = MemoryLimits {
            http_buffers_bytes: 2 << 20,
            telemetry_buffer_bytes: 1 << 20,
        };
        handle.set_memory_limits(limits).unwrap();
        let stats = handle.memory_stats();
        assert_eq!(stats.http_buffers.limit_bytes, 2 << 20);
        assert_eq!(stats.telemetry_buffer.limit_bytes, 1 << 20);
        assert!(
            stats.http_buffers.peak_bytes > 0,
            "the /health answer was held"
        );
        let error = handle
            .set_memory_limits(MemoryLimits {
                http_buffers_bytes: 1000,
                ..limits
            })
            .unwrap_err();
        assert!(error.contains("gateway.max_body_bytes"), "{error}");
        assert_eq!(handle.memory_stats().http_buffers.limit_bytes, 2 << 20);
        handle.shutdown();
        served.await.unwrap().unwrap();
    });
}

#[test]
fn sealed_secrets_need_the_tpm_and_a_plain_name() {
    assert_eq!(
        problem("[models]\ncloud_endpoint = \"https://x\"\ncloud_api_key = { sealed = \"key\" }\n"),
        "edge.toml:3:17: models.cloud_api_key: is a sealed secret, which needs security.use_tpm = true"
    );
    let tpm = "[security]\nuse_tpm = true\n";
    assert_eq!(
        problem(&format!("{tpm}[models]\ncloud_api_key = {{ sealed = \"../key\" }}\n")),
        "edge.toml:4:17: models.cloud_api_key: sealed secret name \"../key\": use letters, digits, '-' and '_'"
    );
    assert_eq!(
        problem(&format!("{tpm}[[upstreams]]\nname = \"u\"\nurl = \"http://x/mcp\"\nheaders = {{ X-Key = {{ file = \"k\" }} }}\n")),
        "edge.toml:6:21: upstreams[0].headers.X-Key: unknown key `file`: a secret is a string, or { sealed = \"name\" }"
    );
}

#[test]
fn oauth_urls_are_https_except_on_localhost() {
    let text = "[security.oauth]\nauthorization_server = \"http://auth.example.net\"\n\
                jwks_uri = \"http://127.0.0.1:9/jwks\"\nresource = \"https://edge-7.lan/mcp\"\n";
    assert_eq!(
        problem(text),
        "edge.toml:2:24: security.oauth.authorization_server: \"http://auth.example.net\" must be an https:// URL (http:// only on localhost)"
    );
    assert_eq!(
        problem("[security.oauth]\njwks_uri = \"https://a/jwks\"\n"),
        "edge.toml:1:1: security.oauth.authorization_server: must be set when jwks_uri or resource is"
    );
}

#[test]
fn power_thresholds_that_contradict_each_other_are_refused() {
    let message = problem(
        "[power]\nbattery_low_percent = 20\nbattery_critical_percent = 25\nexit_on_idle = true\nprofile = \"auto\"\n",
    );
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(
        lines,
        [
            "edge.toml:3:28: power.battery_critical_percent: 25 must be below power.battery_low_percent (20)",
            "edge.toml:4:16: power.exit_on_idle: needs power.sleep_on_idle_ms above 0 (how long idle means)",
        ]
    );
    let message = problem("[power]\nprofile = \"eco\"\n");
    assert!(
        message.starts_with("edge.toml:2:11: power.profile: unknown variant `eco`"),
        "{message}"
    );
}
