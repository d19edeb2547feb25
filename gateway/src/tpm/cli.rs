//! `mcp-gateway attest …`: the verifier's side, run on an operator's machine or in CI.

use std::path::Path;
use std::process::ExitCode;

use super::evidence::{from_hex, Evidence};
use super::verify::{verify, Verified};

/// `mcp-gateway attest verify EVIDENCE --nonce HEX [--ak PEM]`: exit 0 and a per-PCR report
/// when the evidence holds, exit 1 with the reason when it does not, 2 when the inputs cannot
/// be read.
pub fn verify_command(evidence: &Path, nonce: &str, pinned_key: Option<&Path>) -> ExitCode {
    let read = |path: &Path| {
        if path == Path::new("-") {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(path)
        }
        .map_err(|e| format!("{}: {e}", path.display()))
    };
    let inputs = (|| {
        let evidence: Evidence = serde_json::from_str(&read(evidence)?)
            .map_err(|e| format!("{}: not attestation evidence: {e}", evidence.display()))?;
        let nonce = from_hex(nonce).ok_or("--nonce must be hex digits")?;
        let pinned = pinned_key.map(read).transpose()?;
        Ok::<_, String>((evidence, nonce, pinned))
    })();
    let (evidence, nonce, pinned) = match inputs {
        Ok(inputs) => inputs,
        Err(e) => {
            eprintln!("attest verify: {e}");
            return ExitCode::from(2);
        }
    };
    match verify(&evidence, &nonce, pinned.as_deref()) {
        Ok(verified) => {
            #[allow(clippy::print_stdout)] // The command's answer, not a log line.
            {
                print!("{}", report(&verified));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("attestation REJECTED: {e}");
            ExitCode::from(1)
        }
    }
}

/// What `attest verify` prints for accepted evidence.
pub fn report(verified: &Verified) -> String {
    let key = if verified.key_pinned {
        "the pinned attestation key"
    } else {
        "the attestation key in the evidence (NOT pinned: pass --ak with the key recorded at enrolment to tie the quote to this device)"
    };
    let mut out = format!(
        "attestation verified: quote signed by {key}; nonce and PCR digest match; TPM boots {} (restarts {})\n",
        verified.reset_count, verified.restart_count
    );
    for pcr in &verified.pcrs {
        let explained = match pcr.explained_by {
            Some(log) => format!("{log} log replays to it"),
            None if pcr.value.bytes().all(|b| b == b'0') => "unused".into(),
            None => "no event log covers it".into(),
        };
        out.push_str(&format!(
            "PCR {:>2} {} {:<28} {}\n",
            pcr.index, pcr.value, explained, pcr.meaning
        ));
    }
    out.push_str(&format!(
        "firmware events: {}; application events: {}\n",
        verified.firmware_events,
        verified.application_events.len()
    ));
    for event in &verified.application_events {
        out.push_str(&format!(
            "  {} {} {}\n",
            event.event, event.sha256, event.detail
        ));
    }
    out
}

/// `mcp-gateway secret seal NAME [--pcrs LIST] [--config FILE]`: seals the first line of
/// standard input with the configured TPM to the current values of the PCRs in `pcrs` and
/// writes `security.sealed_dir/NAME.json`. Run it on the device, in the boot state the secret
/// is to be released in (with the gateway measured: PCR 23). Exit 0 sealed, 1 failed, 78 bad
/// configuration.
pub fn seal_command(name: &str, pcrs: &str, config: Option<&Path>) -> ExitCode {
    let config = match crate::daemon::load(config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(crate::daemon::EXIT_CONFIG);
        }
    };
    match seal(name, pcrs, &config) {
        Ok(message) => {
            #[allow(clippy::print_stdout)] // The command's answer, not a log line.
            {
                println!("{message}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("secret seal: {e}");
            ExitCode::from(1)
        }
    }
}

fn seal(name: &str, pcrs: &str, config: &crate::Config) -> Result<String, String> {
    if !super::seal::is_valid_name(name) {
        return Err(format!("name {name:?}: use letters, digits, '-' and '_'"));
    }
    let pcrs: Vec<u8> = pcrs
        .split(',')
        .map(|p| p.trim().parse::<u8>().ok().filter(|&p| p <= 23))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("--pcrs {pcrs:?}: give PCR numbers 0-23 separated by commas"))?;
    let mut secret = String::new();
    std::io::stdin()
        .read_line(&mut secret)
        .map_err(|e| format!("standard input: {e}"))?;
    let secret = secret.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err("give the secret on standard input, for example: printf %s \"$KEY\" | mcp-gateway secret seal NAME".into());
    }
    let tpm = super::Tpm::open(&config.security.tpm_device).map_err(|e| e.to_string())?;
    let application_pcr = config.security.tpm_pcr;
    if pcrs.contains(&application_pcr)
        && tpm
            .read_pcrs(&[application_pcr])
            .map_err(|e| e.to_string())?[&application_pcr]
            == [0; 32]
    {
        return Err(format!("PCR {application_pcr} is zero: the gateway has not measured itself since boot. Start it once with its configuration (it measures itself before it looks for sealed secrets), then seal"));
    }
    let sealed = tpm
        .seal(secret.as_bytes(), &pcrs)
        .map_err(|e| e.to_string())?;
    let dir = &config.security.sealed_dir;
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(&sealed).map_err(|e| e.to_string())?;
    let temporary = dir.join(format!(".{name}.json.tmp"));
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&temporary, text + "\n"))
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(format!(
        "sealed \"{name}\" to PCRs {} (sha256): {}\nuse it as {{ sealed = \"{name}\" }}",
        pcrs.iter().map(u8::to_string).collect::<Vec<_>>().join(","),
        path.display()
    ))
}
