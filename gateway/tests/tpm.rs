//! TPM 2.0 against a real swtpm on free loopback ports: the gateway's own measurement, quotes
//! checked by our verifier and by `tpm2_checkquote`, tampering of every kind refused, and the
//! software mode without a TPM. The tpm2-tools commands are the independent side of each check.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mcp_edge_gateway::tpm::eventlog::extend;
use mcp_edge_gateway::tpm::evidence::{from_base64, from_hex, to_hex};
use mcp_edge_gateway::Config;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common;
use crate::common::swtpm::{checkquote, Swtpm};
use crate::common::{Daemon, BIN};

const NONCE: &str = "5eed0f1ce5c0ffee0123456789abcdef";

/// A gateway measured into `swtpm`; its queue in the test's directory so that the effective
/// configuration does not depend on the environment.
fn tpm_config(swtpm: &Swtpm, state: &Path, extra: &str) -> String {
    format!(
        "[security]\nuse_tpm = true\ntpm_device = \"{}\"\nfirmware_event_log = \"{}\"\n{extra}\n\
         [offline]\npersistence_path = \"{}\"\n",
        swtpm.tcti(),
        state.join("no-firmware-log").display(),
        state.join("queue.sqlite").display()
    )
}

fn start_measured(swtpm: &Swtpm, state: &Path, extra: &str) -> Daemon {
    let toml = tpm_config(swtpm, state, extra);
    let state = state.to_owned();
    Daemon::start_with(&toml, |c| {
        c.env("STATE_DIRECTORY", &state);
    })
}

fn get_evidence(daemon: &Daemon, nonce: &str) -> Value {
    let response = daemon.get(&format!("/v1/attestation?nonce={nonce}"));
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()
}

/// A finished command's exit code, stdout and stderr.
fn outcome(output: std::process::Output) -> (i32, String, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `mcp-gateway attest verify`: (exit code, stdout, stderr).
fn verify(dir: &Path, evidence: &Value, nonce: &str, ak: Option<&str>) -> (i32, String, String) {
    let file = dir.join("evidence.json");
    std::fs::write(&file, evidence.to_string()).unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["attest", "verify"])
        .arg(&file)
        .args(["--nonce", nonce]);
    if let Some(ak) = ak {
        let pinned = dir.join("pinned-ak.pem");
        std::fs::write(&pinned, ak).unwrap();
        command.arg("--ak").arg(pinned);
    }
    let output = command.output().unwrap();
    outcome(output)
}

/// PCR 23 = SHA-256(SHA-256(0³² ‖ H(binary)) ‖ H(configuration)), recomputed here from the
/// binary on disk and the configuration file, and read back with tpm2_pcrread. A restart with
/// the same binary and configuration does not extend again; a changed configuration does, and
/// the log still replays to the PCR.
#[test]
fn the_gateway_measures_its_binary_and_configuration_into_pcr_23() {
    let swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    assert_eq!(swtpm.pcr(23), [0; 32]);

    let mut daemon = start_measured(&swtpm, state.path(), "");
    daemon.wait_for_log(
        "gateway binary and configuration measured",
        Duration::from_secs(5),
    );
    let binary: [u8; 32] = Sha256::digest(std::fs::read(BIN).unwrap()).into();
    let text = std::fs::read_to_string(&daemon.config_path).unwrap();
    let config = Config::from_toml(&text, "test").unwrap();
    let config_digest = mcp_edge_gateway::tpm::config_digest(&config);
    let expected = extend(&extend(&[0; 32], &binary), &config_digest);
    assert_eq!(to_hex(&swtpm.pcr(23)), to_hex(&expected));

    let log = std::fs::read_to_string(state.path().join("tpm-measurements.jsonl")).unwrap();
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{log}");
    assert_eq!(events[0]["event"], "gateway-binary");
    assert_eq!(events[0]["sha256"], to_hex(&binary));
    assert_eq!(events[1]["event"], "gateway-config");
    assert_eq!(events[1]["sha256"], to_hex(&config_digest));
    drop(daemon);

    // Same binary, same configuration: measured once per boot.
    let mut again = start_measured(&swtpm, state.path(), "");
    again.wait_for_log("already measured this boot", Duration::from_secs(5));
    assert_eq!(swtpm.pcr(23), expected);
    drop(again);

    // Another configuration: extended again, and the evidence still verifies.
    let changed = start_measured(&swtpm, state.path(), "attestation_required = true");
    let changed_text = std::fs::read_to_string(&changed.config_path).unwrap();
    let changed_digest =
        mcp_edge_gateway::tpm::config_digest(&Config::from_toml(&changed_text, "test").unwrap());
    let expected = extend(&extend(&expected, &binary), &changed_digest);
    assert_eq!(swtpm.pcr(23), expected);
    let evidence = get_evidence(&changed, NONCE);
    assert_eq!(
        evidence["event_logs"]["application"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let (code, stdout, stderr) = verify(state.path(), &evidence, NONCE, None);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("PCR 23 {}", to_hex(&expected))),
        "{stdout}"
    );
    assert!(stdout.contains("application log replays to it"), "{stdout}");
}

/// A quote verifies in Rust (`attest verify`) and independently with `tpm2_checkquote`; a
/// wrong nonce, a tampered PCR value, a tampered event log and a foreign attestation key are
/// each refused, by both where both can tell.
#[test]
fn quotes_verify_and_tampering_is_refused() {
    let swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let daemon = start_measured(&swtpm, state.path(), "");
    let evidence = get_evidence(&daemon, NONCE);
    let dir = state.path();

    assert_eq!(evidence["nonce"], NONCE);
    assert_eq!(evidence["pcr_bank"], "sha256");
    let pcrs = evidence["pcrs"].as_object().unwrap();
    let mut indices: Vec<u8> = pcrs.keys().map(|k| k.parse().unwrap()).collect();
    indices.sort();
    assert_eq!(indices, (0..=15).chain([23]).collect::<Vec<u8>>());
    assert_eq!(pcrs["23"], to_hex(&swtpm.pcr(23)));
    assert!(evidence["attestation_key"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));

    let (code, stdout, stderr) = verify(dir, &evidence, NONCE, None);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("attestation verified"), "{stdout}");
    assert!(stdout.contains("NOT pinned"), "{stdout}");
    let ak = evidence["attestation_key"].as_str().unwrap();
    let (code, stdout, stderr) = verify(dir, &evidence, NONCE, Some(ak));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("pinned attestation key"), "{stdout}");

    // tpm2_checkquote: the key as PEM, the signed message and signature as the TPM marshals
    // them, the PCR values in tpm2-tools' own file format.
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    write("ak.pem", ak.as_bytes());
    write(
        "quote.msg",
        &from_base64(evidence["quote"].as_str().unwrap()).unwrap(),
    );
    write(
        "quote.sig",
        &from_base64(evidence["signature"].as_str().unwrap()).unwrap(),
    );
    let values = |pcrs: &serde_json::Map<String, Value>| -> Vec<u8> {
        let mut ordered: Vec<(u8, Vec<u8>)> = pcrs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), from_hex(v.as_str().unwrap()).unwrap()))
            .collect();
        ordered.sort_by_key(|(i, _)| *i);
        tpm2_tools_pcr_file(&ordered)
    };
    write("pcrs.bin", &values(pcrs));
    let check = |nonce: &str| {
        checkquote(
            dir,
            &[
                "-u",
                "ak.pem",
                "-m",
                "quote.msg",
                "-s",
                "quote.sig",
                "-f",
                "pcrs.bin",
                "-g",
                "sha256",
                "-q",
                nonce,
            ],
        )
    };
    let output = check(NONCE);
    assert!(
        output.status.success(),
        "tpm2_checkquote: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !check("00112233445566778899aabbccddeeff").status.success(),
        "tpm2_checkquote took a wrong nonce"
    );

    // A wrong nonce.
    let (code, _, stderr) = verify(dir, &evidence, "00112233445566778899aabbccddeeff", None);
    assert_eq!(code, 1);
    assert!(stderr.contains("another nonce"), "{stderr}");

    // A tampered PCR value: both verifiers refuse it.
    let mut tampered = evidence.clone();
    tampered["pcrs"]["7"] = Value::String("11".repeat(32));
    let (code, _, stderr) = verify(dir, &tampered, NONCE, None);
    assert_eq!(code, 1);
    assert!(stderr.contains("not the ones the TPM quoted"), "{stderr}");
    write("pcrs.bin", &values(tampered["pcrs"].as_object().unwrap()));
    assert!(
        !check(NONCE).status.success(),
        "tpm2_checkquote took a tampered PCR value"
    );

    // A tampered event log (the binary's digest swapped for another).
    let mut tampered = evidence.clone();
    tampered["event_logs"]["application"][0]["sha256"] = Value::String("22".repeat(32));
    let (code, _, stderr) = verify(dir, &tampered, NONCE, None);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("PCR 23: the application event log replays to"),
        "{stderr}"
    );
    // An event dropped from the log.
    let mut tampered = evidence.clone();
    tampered["event_logs"]["application"]
        .as_array_mut()
        .unwrap()
        .pop();
    assert_eq!(verify(dir, &tampered, NONCE, None).0, 1);

    // A foreign attestation key: another TPM's quote checked against this device's key, and
    // this quote presented with the other key.
    let other_tpm = Swtpm::start();
    let other_state = tempfile::tempdir().unwrap();
    let other = start_measured(&other_tpm, other_state.path(), "");
    let foreign = get_evidence(&other, NONCE);
    assert_ne!(foreign["attestation_key"], evidence["attestation_key"]);
    let (code, _, stderr) = verify(dir, &foreign, NONCE, Some(ak));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("another attestation key than the one pinned"),
        "{stderr}"
    );
    let mut swapped = evidence.clone();
    swapped["attestation_key"] = foreign["attestation_key"].clone();
    let (code, _, stderr) = verify(dir, &swapped, NONCE, None);
    assert_eq!(code, 1);
    assert!(stderr.contains("signature does not verify"), "{stderr}");
    write("pcrs.bin", &values(pcrs));
    write(
        "ak.pem",
        foreign["attestation_key"].as_str().unwrap().as_bytes(),
    );
    assert!(
        !check(NONCE).status.success(),
        "tpm2_checkquote took a foreign key"
    );
}

/// The PCR file `tpm2_quote -o` writes and `tpm2_checkquote -f` reads (its "serialized"
/// format: the C structures in host order). tpm2-tools 5.4 cannot check values given without
/// the selection ("values" format), so the test writes this one.
fn tpm2_tools_pcr_file(values: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut file = 1u32.to_le_bytes().to_vec(); // TPML_PCR_SELECTION.count
    let mut bitmap = [0u8; 4];
    for (index, _) in values {
        bitmap[usize::from(index / 8)] |= 1 << (index % 8);
    }
    file.extend(0x000bu16.to_le_bytes()); // SHA-256
    file.push(3); // sizeofSelect
    file.extend(bitmap);
    file.push(0); // padding of TPMS_PCR_SELECTION
    file.extend([0u8; 15 * 8]); // the unused selections
    let groups = values.chunks(8);
    file.extend((groups.len() as u32).to_le_bytes());
    for group in groups {
        file.extend((group.len() as u32).to_le_bytes()); // TPML_DIGEST.count
        for slot in 0..8 {
            let mut digest = [0u8; 66]; // TPM2B_DIGEST: size, then a 64-byte buffer
            if let Some((_, value)) = group.get(slot) {
                digest[..2].copy_from_slice(&(value.len() as u16).to_le_bytes());
                digest[2..2 + value.len()].copy_from_slice(value);
            }
            file.extend(digest);
        }
    }
    file
}

/// The attestation key is created once and persisted in the TPM: a restarted gateway quotes
/// with the same key, and a new nonce gets a new quote.
#[test]
fn the_attestation_key_persists_across_restarts() {
    let swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let first = get_evidence(&start_measured(&swtpm, state.path(), ""), NONCE);
    let second_nonce = "0102030405060708";
    let second = get_evidence(&start_measured(&swtpm, state.path(), ""), second_nonce);
    assert_eq!(first["attestation_key"], second["attestation_key"]);
    assert_ne!(first["quote"], second["quote"]);
    let ak = first["attestation_key"].as_str().unwrap();
    assert_eq!(verify(state.path(), &second, second_nonce, Some(ak)).0, 0);
    // The persistent handle is visible to tpm2-tools.
    let handles = swtpm.tool("tpm2_getcap", &["handles-persistent"]);
    assert!(String::from_utf8_lossy(&handles.stdout).contains("0x81010020"));

    // Rotation (docs/SECURITY.md, "Key rotation"): evicting the handle makes the next start
    // create a new AK; quotes then verify only under the new one, which the fleet re-enrols.
    let evicted = swtpm.tool("tpm2_evictcontrol", &["-C", "o", "-c", "0x81010020"]);
    assert!(evicted.status.success(), "{evicted:?}");
    let third_nonce = "a1a2a3a4a5a6a7a8";
    let third = get_evidence(&start_measured(&swtpm, state.path(), ""), third_nonce);
    let new_ak = third["attestation_key"].as_str().unwrap();
    assert_ne!(new_ak, ak);
    assert_ne!(verify(state.path(), &third, third_nonce, Some(ak)).0, 0);
    assert_eq!(verify(state.path(), &third, third_nonce, Some(new_ak)).0, 0);
}

/// Bad nonces are refused before the TPM is asked.
#[test]
fn a_bad_nonce_is_refused() {
    let swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let daemon = start_measured(&swtpm, state.path(), "");
    for query in [
        "",
        "?nonce=",
        "?nonce=xyz",
        "?nonce=0011",
        &format!("?nonce={}", "ab".repeat(65)),
    ] {
        let response = daemon.get(&format!("/v1/attestation{query}"));
        assert_eq!(response.status, 400, "{query}: {}", response.body);
        assert_eq!(response.error_code(), "bad_nonce");
    }
    let response = send_post(&daemon, "/v1/attestation");
    assert_eq!(response.status, 405);
}

fn send_post(daemon: &Daemon, path: &str) -> common::Response {
    common::send(
        &mut daemon.connect(),
        &format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"),
    )
}

/// MCP clients get the same evidence from the `attest_device` tool.
#[test]
fn the_attest_device_tool_returns_verifiable_evidence() {
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::ServiceExt;

    let swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let daemon = start_measured(&swtpm, state.path(), "");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let evidence = runtime.block_on(async {
        let transport =
            StreamableHttpClientTransport::from_uri(format!("http://{}/mcp", daemon.addr));
        let client = ().serve(transport).await.unwrap();
        let tools = client.list_all_tools().await.unwrap();
        assert!(tools.iter().any(|t| t.name == "attest_device"));
        let call = |nonce: &str| {
            let mut params = rmcp::model::CallToolRequestParams::new("attest_device");
            params = params.with_arguments(
                serde_json::json!({ "nonce": nonce })
                    .as_object()
                    .unwrap()
                    .clone(),
            );
            client.call_tool(params)
        };
        let refused = call("not hex").await.unwrap();
        assert_eq!(refused.is_error, Some(true));
        let result = call(NONCE).await.unwrap();
        assert_ne!(result.is_error, Some(true), "{result:?}");
        let evidence = result.structured_content.unwrap();
        client.cancel().await.unwrap();
        evidence
    });
    assert_eq!(verify(state.path(), &evidence, NONCE, None).0, 0);
}

/// Without a TPM: software mode with a loud warning and 503 answers, unless
/// `attestation_required`, which refuses to start (exit 78) and says why.
#[test]
fn without_a_tpm_attestation_is_unavailable_or_start_up_is_refused() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let tcti = format!("swtpm:host=127.0.0.1,port={port}");

    let mut soft = Daemon::start(&format!(
        "[security]\nuse_tpm = true\ntpm_device = \"{tcti}\"\n"
    ));
    soft.wait_for_log("TPM UNAVAILABLE", Duration::from_secs(5));
    let response = soft.get(&format!("/v1/attestation?nonce={NONCE}"));
    assert_eq!(response.status, 503, "{}", response.body);
    assert_eq!(response.error_code(), "attestation_unavailable");
    assert!(
        response.body.contains("cannot reach a TPM"),
        "{}",
        response.body
    );
    let health = soft.get("/health").json();
    assert!(
        health["subsystems"]["attestation"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("unavailable"),
        "{health}"
    );

    let off = Daemon::start("");
    let response = off.get(&format!("/v1/attestation?nonce={NONCE}"));
    assert_eq!(response.status, 503);
    assert!(
        response.body.contains("security.use_tpm = false"),
        "{}",
        response.body
    );

    let (_dir, path) = common::config_file(&format!(
        "[security]\nuse_tpm = true\nattestation_required = true\ntpm_device = \"{tcti}\"\n"
    ));
    let output = common::serve_until_exit(&path, _dir.path());
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach a TPM") && stderr.contains("attestation_required"),
        "{stderr}"
    );
}

/// `mcp-gateway secret seal NAME` with the secret on stdin: (exit code, stdout, stderr).
fn seal(config: &Path, name: &str, pcrs: &str, secret: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(["secret", "seal", name, "--pcrs", pcrs, "--config"])
        .arg(config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{secret}\n").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    outcome(output)
}

/// A cloud API key sealed to PCRs 7 and 23 is unsealed by the gateway at start and sent to the
/// cloud; the file holds no trace of it. After PCR 7 changes (as a changed Secure Boot state
/// would change it) the gateway refuses to start and names PCR 7; on another TPM the sealed
/// file is useless.
#[test]
fn a_sealed_secret_unseals_before_and_fails_after_a_pcr_change() {
    use common::cloud::{CloudServer, Reply};

    let swtpm = Swtpm::start();
    let state = tempfile::tempdir().unwrap();
    let cloud = CloudServer::start(|_, _| Reply::Text(vec!["sealed hello".into()]));
    let sealed_dir = state.path().join("sealed");
    let extra = format!(
        "sealed_dir = \"{}\"\n[models]\ncloud_endpoint = \"{}\"\ncloud_api_key = {{ sealed = \"cloud-api-key\" }}\n",
        sealed_dir.display(),
        cloud.endpoint()
    );
    // The operator's workflow on the device: the gateway starts, measures itself and stops for
    // want of the secret; the secret is sealed in that state; the gateway starts again.
    let (_dir, config) = common::config_file(&tpm_config(&swtpm, state.path(), &extra));
    let output = common::serve_until_exit(&config, state.path());
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("mcp-gateway secret seal cloud-api-key"),
        "{stderr}"
    );
    assert_ne!(
        swtpm.pcr(23),
        [0; 32],
        "measured before the secret was looked for"
    );
    let (code, stdout, stderr) = seal(&config, "cloud-api-key", "7,23", "sk-sealed-key-4711");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("sealed \"cloud-api-key\" to PCRs 7,23"),
        "{stdout}"
    );
    let file = std::fs::read_to_string(sealed_dir.join("cloud-api-key.json")).unwrap();
    assert!(!file.contains("sk-sealed-key-4711"), "{file}");
    let sealed: Value = serde_json::from_str(&file).unwrap();
    assert_eq!(sealed["pcrs"]["23"], to_hex(&swtpm.pcr(23)));

    let daemon = start_measured(&swtpm, state.path(), &extra);
    let response = common::post_json(
        daemon.addr,
        "/v1/chat/completions",
        &serde_json::json!({ "messages": [{ "role": "user", "content": "Hi" }] }),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    let sent = cloud.requests.lock().unwrap()[0].clone();
    assert_eq!(
        sent.authorization.as_deref(),
        Some("Bearer sk-sealed-key-4711")
    );
    assert!(!daemon
        .logs()
        .iter()
        .any(|l| l.contains("sk-sealed-key-4711")));
    drop(daemon);

    // The boot chain changes: PCR 7 is extended.
    let output = swtpm.tool(
        "tpm2_pcrextend",
        &[&format!("7:sha256={}", "ab".repeat(32))],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = common::serve_until_exit(&config, state.path());
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("models.cloud_api_key")
            && stderr.contains("PCR 7 changed since the secret was sealed"),
        "{stderr}"
    );

    // Another TPM cannot load the object at all.
    let other = Swtpm::start();
    let other_state = tempfile::tempdir().unwrap();
    std::fs::create_dir(other_state.path().join("sealed")).unwrap();
    std::fs::copy(
        sealed_dir.join("cloud-api-key.json"),
        other_state.path().join("sealed/cloud-api-key.json"),
    )
    .unwrap();
    let other_extra = extra.replace(
        &sealed_dir.display().to_string(),
        &other_state.path().join("sealed").display().to_string(),
    );
    let (_other_dir, path) =
        common::config_file(&tpm_config(&other, other_state.path(), &other_extra));
    let output = common::serve_until_exit(&path, other_state.path());
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("models.cloud_api_key"), "{stderr}");
}

/// A stolen device can be probed on the TPM's bus (SPI/LPC). Sealing and unsealing run over
/// sessions salted with the storage key and encrypting the secret, so a recording of every byte
/// between the gateway and the TPM never holds the secret.
#[test]
fn a_sealed_secret_never_crosses_the_tpm_link_in_clear() {
    use common::cloud::{CloudServer, Reply};
    use common::swtpm::BusTap;

    let swtpm = Swtpm::start();
    let tap = BusTap::start(&swtpm);
    let state = tempfile::tempdir().unwrap();
    let cloud = CloudServer::start(|_, _| Reply::Text(vec!["ok".into()]));
    let secret = "sk-bus-probe-0123456789abcdef";
    let toml = format!(
        "[security]\nuse_tpm = true\ntpm_device = \"{}\"\nfirmware_event_log = \"{}\"\nsealed_dir = \"{}\"\n\
         [models]\ncloud_endpoint = \"{}\"\ncloud_api_key = {{ sealed = \"key\" }}\n\
         [offline]\npersistence_path = \"{}\"\n",
        tap.tcti(),
        state.path().join("none").display(),
        state.path().join("sealed").display(),
        cloud.endpoint(),
        state.path().join("queue.sqlite").display(),
    );
    let (_dir, config) = common::config_file(&toml);
    let serve = || common::serve_until_exit(&config, state.path());
    assert_eq!(
        serve().status.code(),
        Some(78),
        "measures itself, then stops: not sealed yet"
    );
    let (code, _, stderr) = seal(&config, "key", "7,23", secret);
    assert_eq!(code, 0, "{stderr}");
    let daemon = Daemon::start_with(&toml, |c| {
        c.env("STATE_DIRECTORY", state.path());
    });
    let response = common::post_json(
        daemon.addr,
        "/v1/chat/completions",
        &serde_json::json!({ "messages": [{ "role": "user", "content": "Hi" }] }),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        cloud.requests.lock().unwrap()[0].authorization.as_deref(),
        Some(format!("Bearer {secret}").as_str()),
        "unsealed through the tap"
    );
    eprintln!("the tap saw {} bytes", tap.bytes_seen());
    assert!(tap.bytes_seen() > 1_000, "the tap saw the traffic");
    assert!(
        !tap.saw(secret.as_bytes()),
        "the secret crossed the TPM link in clear"
    );
}
