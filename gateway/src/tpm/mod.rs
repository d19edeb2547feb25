//! TPM 2.0 (tss-esapi over libtss2): the gateway measures its binary and effective
//! configuration into an application PCR before it serves, answers attestation requests with
//! quotes signed by a persistent attestation key, and [`verify`] checks such answers without a
//! TPM. docs/SECURITY.md describes the PCRs, the event log format and the verifier.

// The TPM commands (tss-esapi over libtss2) are in builds with the `tpm` feature; without it,
// `absent` stands in: a `Tpm` that cannot be opened, so the gateway runs in software mode or,
// when the configuration demands a TPM, refuses to start and says why.
#[cfg(not(feature = "tpm"))]
#[path = "absent.rs"]
mod chip;
#[cfg(feature = "tpm")]
mod chip;
#[cfg(feature = "tpm")]
mod chip_seal;
pub mod cli;
pub mod eventlog;
pub mod evidence;
pub mod seal;
pub mod verify;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256 as Sha256Hasher};
use tracing::{info, warn};

pub use chip::Tpm;
use eventlog::{replay_app, AppEvent, AppEventLog};
pub use evidence::Evidence;
use evidence::{der_to_pem, to_base64, to_hex, EventLogs};
pub use seal::{SealedSecret, MAX_SECRET_BYTES};

use crate::config::Config;

/// Where the attestation key lives across boots and image updates: a persistent handle in the
/// endorsement range, chosen by mcp-edge (documented in docs/SECURITY.md).
pub const AK_PERSISTENT_HANDLE: u32 = 0x8101_0020;

/// A SHA-256 PCR value or digest.
pub type Sha256 = [u8; 32];

/// A quote and the PCR values it covers, read around it.
#[derive(Debug, Clone)]
pub struct Quote {
    /// The marshalled `TPMS_ATTEST` the TPM signed.
    pub attest: Vec<u8>,
    /// The marshalled `TPMT_SIGNATURE`.
    pub signature: Vec<u8>,
    /// SHA-256 bank values of the quoted PCRs.
    pub pcrs: BTreeMap<u8, Sha256>,
}

/// What went wrong talking to the TPM.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    #[error("cannot reach a TPM through {tcti:?}: {message} (is the TPM enabled in the firmware, /dev/tpmrm0 present and readable by the gateway's user, or swtpm running?)")]
    Open { tcti: String, message: String },
    #[error("TPM {what} failed: {source}")]
    #[cfg(feature = "tpm")]
    Command {
        what: &'static str,
        source: tss_esapi::Error,
    },
    #[error("this mcp-gateway was built without TPM support (the `tpm` feature): set security.use_tpm = false and remove sealed secrets from the configuration, or install a build with it")]
    NotBuilt,
    #[error("the TPM has no SHA-256 PCR bank (enable it in the firmware's TPM settings)")]
    NoSha256Bank,
    #[error("PCR {0} does not exist")]
    PcrOutOfRange(u8),
    #[error("persistent handle {0:#010x} holds a key that is not an ECC P-256 restricted signing key; free it with `tpm2_evictcontrol -C o -c {0:#010x}` if it is not in use")]
    UnexpectedAk(u32),
    #[error("the nonce is longer than the TPM accepts (64 bytes)")]
    NonceTooLong,
    #[error("the PCRs kept changing while quoting; try again")]
    PcrsKeptChanging,
    #[error("cannot measure the gateway: {0}")]
    Measure(String),
    #[error("{0}")]
    Seal(String),
    #[error("{0} (security.attestation_required = true: the gateway does not start without a working TPM)")]
    Required(Box<TpmError>),
}

/// Why an attestation request got no quote.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// No TPM in use: `use_tpm = false`, or it failed at start-up (the reason is given).
    #[error("attestation is unavailable: {0}")]
    Unavailable(String),
    #[error("the nonce must be 8 to 64 bytes, given as hex")]
    BadNonce,
    #[error(transparent)]
    Tpm(#[from] TpmError),
}

/// Silences libtss2's own logging to stderr (it reports expected misses, such as probing for
/// the attestation key before it exists, as errors); the gateway logs what fails itself. An
/// operator's `TSS2_LOG` is kept. Call while the process has one thread.
pub fn quiet_library_logs() {
    if std::env::var_os("TSS2_LOG").is_none() {
        std::env::set_var("TSS2_LOG", "all+NONE");
    }
}

/// PCRs quoted besides the application PCR: the boot chain and the OS-owned ones (0–15).
const BOOT_PCRS: std::ops::RangeInclusive<u8> = 0..=15;

/// Attestation for the running gateway: a TPM it has measured itself into, or the reason
/// there is none (software mode).
#[derive(Debug)]
pub struct Attestation {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Tpm(Measured),
    Unavailable(String),
}

/// A TPM the gateway has measured itself into, and what its quotes carry besides.
#[derive(Debug)]
struct Measured {
    tpm: Tpm,
    log: AppEventLog,
    application_pcr: u8,
    firmware_log: PathBuf,
    attestation_key: String,
    ek_certificate: Option<String>,
}

impl Attestation {
    /// Without `[security] use_tpm`, software mode. With it: opens the TPM, measures the
    /// gateway (once per boot for the same binary and configuration) and makes sure the
    /// attestation key exists. A TPM that fails is an error when `attestation_required`, and
    /// otherwise software mode with a loud warning.
    pub fn start(config: &Config, state_dir: &Path) -> Result<Self, TpmError> {
        let security = &config.security;
        if !security.use_tpm {
            return Ok(Self::unavailable(
                "no TPM configured (security.use_tpm = false)",
            ));
        }
        match Self::start_tpm(config, state_dir) {
            Ok(attestation) => Ok(attestation),
            Err(e) if security.attestation_required => Err(TpmError::Required(Box::new(e))),
            Err(e) => {
                warn!(error = %e, "TPM UNAVAILABLE: running in software mode; this device cannot prove what it runs and attestation requests will be refused (set security.attestation_required = true to refuse to start instead)");
                Ok(Self::unavailable(&e.to_string()))
            }
        }
    }

    fn unavailable(reason: &str) -> Self {
        Self {
            mode: Mode::Unavailable(reason.to_owned()),
        }
    }

    fn start_tpm(config: &Config, state_dir: &Path) -> Result<Self, TpmError> {
        let security = &config.security;
        let tpm = Tpm::open(&security.tpm_device)?;
        let log = AppEventLog::new(state_dir.join("tpm-measurements.jsonl"))
            .map_err(|e| TpmError::Measure(format!("cannot read the boot id: {e}")))?;
        measure(
            &tpm,
            &log,
            security.tpm_pcr,
            &reference_events(config, security.tpm_pcr)?,
        )?;
        let attestation_key = der_to_pem("PUBLIC KEY", &tpm.attestation_key()?);
        let ek_certificate = tpm.ek_certificate();
        info!(
            tcti = tpm.tcti(),
            application_pcr = security.tpm_pcr,
            ek_certificate = ek_certificate.is_some(),
            "TPM ready: gateway measured, attestation key at {AK_PERSISTENT_HANDLE:#010x}"
        );
        Ok(Self {
            mode: Mode::Tpm(Measured {
                tpm,
                log,
                application_pcr: security.tpm_pcr,
                firmware_log: security.firmware_event_log.clone(),
                attestation_key,
                ek_certificate,
            }),
        })
    }

    /// The TPM in use, if any.
    pub fn tpm(&self) -> Option<&Tpm> {
        match &self.mode {
            Mode::Tpm(measured) => Some(&measured.tpm),
            Mode::Unavailable(_) => None,
        }
    }

    /// `None` when a TPM is in use, else why not.
    pub fn unavailable_reason(&self) -> Option<&str> {
        match &self.mode {
            Mode::Tpm(_) => None,
            Mode::Unavailable(reason) => Some(reason),
        }
    }

    /// [`Attestation::evidence`] on a blocking thread, for the HTTP route and the MCP tool.
    pub async fn evidence_off_runtime(
        self: &Arc<Self>,
        nonce: Vec<u8>,
    ) -> Result<Evidence, AttestError> {
        let attestation = Arc::clone(self);
        tokio::task::spawn_blocking(move || attestation.evidence(&nonce))
            .await
            .unwrap_or_else(|e| {
                Err(AttestError::Unavailable(format!(
                    "the quote task failed: {e}"
                )))
            })
    }

    /// A quote over PCRs 0–15 and the application PCR for `nonce`, with the attestation key,
    /// the EK certificate and both event logs. Blocking: call it off the async runtime.
    pub fn evidence(&self, nonce: &[u8]) -> Result<Evidence, AttestError> {
        let m = match &self.mode {
            Mode::Tpm(measured) => measured,
            Mode::Unavailable(reason) => return Err(AttestError::Unavailable(reason.clone())),
        };
        if !(8..=64).contains(&nonce.len()) {
            return Err(AttestError::BadNonce);
        }
        let mut pcrs: Vec<u8> = BOOT_PCRS.collect();
        if !pcrs.contains(&m.application_pcr) {
            pcrs.push(m.application_pcr);
        }
        let quote = m.tpm.quote(nonce, &pcrs)?;
        let application = m
            .log
            .read()
            .map_err(|e| TpmError::Measure(format!("{}: {e}", m.log.path().display())))?;
        let firmware = std::fs::read(&m.firmware_log).ok().map(|b| to_base64(&b));
        Ok(Evidence {
            nonce: to_hex(nonce),
            pcr_bank: "sha256".into(),
            pcrs: quote.pcrs.iter().map(|(i, v)| (*i, to_hex(v))).collect(),
            application_pcr: m.application_pcr,
            quote: to_base64(&quote.attest),
            signature: to_base64(&quote.signature),
            attestation_key: m.attestation_key.clone(),
            ek_certificate: m.ek_certificate.clone(),
            event_logs: EventLogs {
                firmware,
                application,
            },
        })
    }
}

/// Replaces every `{ sealed = "name" }` secret in `config` with its value, unsealed from
/// `security.sealed_dir/name.json` by `tpm` (or, without one, the TPM the configuration names).
pub fn unseal_secrets(config: &mut Config, tpm: Option<&Tpm>) -> Result<(), TpmError> {
    let dir = config.security.sealed_dir.clone();
    let tcti = config.security.tpm_device.clone();
    let config_pcr = config.security.tpm_pcr;
    let mut opened = None;
    for (key, secret) in config.secrets_mut() {
        let Some(name) = secret.sealed_name() else {
            continue;
        };
        let path = dir.join(format!("{name}.json"));
        let context = |e: &dyn std::fmt::Display| {
            TpmError::Seal(format!(
                "{key} = {{ sealed = \"{name}\" }} ({}): {e}",
                path.display()
            ))
        };
        let tpm = match tpm {
            Some(tpm) => tpm,
            None => match &opened {
                Some(tpm) => tpm,
                None => opened.insert(Tpm::open(&tcti).map_err(|e| context(&e))?),
            },
        };
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => context(&format!(
                "not sealed yet: on the device, run `mcp-gateway secret seal {name}` with the secret on standard input (the gateway has measured itself, so PCR {} is ready)",
                config_pcr
            )),
            _ => context(&e),
        })?;
        let sealed: SealedSecret = serde_json::from_str(&text).map_err(|e| context(&e))?;
        let value = tpm.unseal(&sealed).map_err(|e| context(&e))?;
        let value =
            String::from_utf8(value).map_err(|_| context(&"the secret is not UTF-8 text"))?;
        secret.unsealed(value);
    }
    Ok(())
}

/// The two measurements of the running gateway: the SHA-256 of its executable (read through
/// `/proc/self/exe`, so a file replaced on disk does not change it) and of its effective
/// configuration (the parsed configuration as JSON, which `mcp-gateway attest reference`
/// recomputes from a file).
pub fn reference_events(config: &Config, pcr: u8) -> Result<Vec<AppEvent>, TpmError> {
    let exe =
        std::env::current_exe().map_or_else(|_| "mcp-gateway".into(), |p| p.display().to_string());
    let mut binary = Sha256Hasher::new();
    let mut file = std::fs::File::open("/proc/self/exe")
        .map_err(|e| TpmError::Measure(format!("/proc/self/exe: {e}")))?;
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => binary.update(&buffer[..n]),
            Err(e) => return Err(TpmError::Measure(format!("/proc/self/exe: {e}"))),
        }
    }
    Ok(vec![
        AppEvent {
            pcr,
            event: "gateway-binary".into(),
            sha256: to_hex(&binary.finalize()),
            detail: exe,
        },
        AppEvent {
            pcr,
            event: "gateway-config".into(),
            sha256: to_hex(&config_digest(config)),
            detail: "effective configuration (JSON)".into(),
        },
    ])
}

/// SHA-256 of the configuration as JSON (field order is the struct's, so it is stable).
pub fn config_digest(config: &Config) -> Sha256 {
    let json = serde_json::to_vec(config).unwrap_or_default();
    Sha256Hasher::digest(json).into()
}

/// Brings the log and the PCR in line, then measures `events` unless this boot's last
/// measurement was the same: log first (synced), then extend, so that a crash in between
/// leaves an event that was logged but not extended, which the next start drops.
fn measure(tpm: &Tpm, log: &AppEventLog, pcr: u8, events: &[AppEvent]) -> Result<(), TpmError> {
    let io = |e: std::io::Error| TpmError::Measure(format!("{}: {e}", log.path().display()));
    let mut logged = log.read().map_err(io)?;
    let current = tpm.read_pcrs(&[pcr])?[&pcr];
    let replays_to = |events: &[AppEvent]| {
        replay_app(events)
            .ok()
            .map(|p| p.get(&pcr).copied().unwrap_or([0; 32]))
    };
    if replays_to(&logged) != Some(current) {
        match (0..logged.len())
            .rev()
            .find(|&n| replays_to(&logged[..n]) == Some(current))
        {
            Some(n) => {
                warn!(dropped = logged.len() - n, "dropping logged measurements that never reached PCR {pcr} (an interrupted start)");
                logged.truncate(n);
                log.rewrite(&logged).map_err(io)?;
            }
            None => {
                warn!(pcr, value = %to_hex(&current), log = %log.path().display(), "the measurement log does not explain PCR {pcr} (was the state directory wiped, or the PCR extended by something else?); quotes will not verify until the next boot")
            }
        }
    }
    if logged.ends_with(events) {
        info!(
            pcr,
            "gateway already measured this boot with the same binary and configuration"
        );
        return Ok(());
    }
    for event in events {
        log.append(event).map_err(io)?;
        let digest: Sha256 = evidence::from_hex(&event.sha256)
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| {
                TpmError::Measure(format!("{} is not a SHA-256 digest", event.sha256))
            })?;
        tpm.extend(pcr, &digest)?;
    }
    info!(pcr, "gateway binary and configuration measured");
    Ok(())
}
