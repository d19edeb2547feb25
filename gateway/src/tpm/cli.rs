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
