//! Checks [`Evidence`] without a TPM: the quote's signature under the attestation key (the one
//! pinned by the verifier, or the one the evidence carries), the nonce, that the PCR values
//! are the quoted ones, and that the event logs replay to them. Used by
//! `mcp-gateway attest verify` and the tests; `tpm2_checkquote` is an independent second check.

use std::collections::BTreeMap;

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use serde::Serialize;
use sha2::{Digest as _, Sha256 as Sha256Hasher};

use super::eventlog::{parse_firmware_log, replay_app, AppEvent};
use super::evidence::{
    from_base64, from_hex, left_pad_32, p256_point, pcr_meaning, pem_to_der, to_hex, Evidence,
};
use super::Sha256;

/// Why evidence is not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejected {
    #[error("malformed evidence: {0}")]
    Malformed(String),
    #[error("the quote is signed by another attestation key than the one pinned for this device")]
    ForeignKey,
    #[error("the quote's signature does not verify under the attestation key")]
    BadSignature,
    #[error("the quote was made for another nonce (a replayed or foreign answer)")]
    WrongNonce,
    #[error("the quote covers PCRs {quoted:?} of the SHA-256 bank, the evidence lists {listed:?}")]
    PcrSelection { quoted: Vec<u8>, listed: Vec<u8> },
    #[error("the PCR values in the evidence are not the ones the TPM quoted (digest mismatch)")]
    PcrDigest,
    #[error("PCR {pcr}: the {log} event log replays to {replayed}, the TPM quoted {quoted}")]
    LogMismatch {
        pcr: u8,
        log: &'static str,
        quoted: String,
        replayed: String,
    },
}

/// One quoted PCR, its conventional meaning, and which log explains its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PcrReport {
    pub index: u8,
    pub value: String,
    pub meaning: &'static str,
    /// `firmware` or `application` when that log replays to the value; `None` when no log
    /// covers this PCR (a zero value then means nothing was measured into it).
    pub explained_by: Option<&'static str>,
}

/// Accepted evidence, explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    pub pcrs: Vec<PcrReport>,
    /// Whether the attestation key was the verifier's pinned one (otherwise the evidence's own
    /// key was trusted, which proves a TPM signed it but not which device).
    pub key_pinned: bool,
    /// TPM reset count (boots) and restart count from the quote's clock information.
    pub reset_count: u32,
    pub restart_count: u32,
    pub firmware_events: usize,
    pub application_events: Vec<AppEvent>,
}

/// The signed `TPMS_ATTEST` fields a quote verifier needs.
#[derive(Debug)]
struct QuoteInfo {
    extra_data: Vec<u8>,
    reset_count: u32,
    restart_count: u32,
    /// `(hash algorithm, selected PCR indices)` per bank.
    selection: Vec<(u16, Vec<u8>)>,
    pcr_digest: Vec<u8>,
}

const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;
const TPM_ALG_ECDSA: u16 = 0x0018;
const TPM_ALG_SHA256: u16 = 0x000b;

/// A big-endian reader for TPM structures.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Rejected> {
        if self.bytes.len() < n {
            return Err(Rejected::Malformed("a TPM structure is cut short".into()));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Rejected> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Rejected> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, Rejected> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A `TPM2B_*`: a 16-bit size and that many bytes.
    fn sized(&mut self) -> Result<&'a [u8], Rejected> {
        let size = self.u16()? as usize;
        self.take(size)
    }
}

fn parse_quote(attest: &[u8]) -> Result<QuoteInfo, Rejected> {
    let mut r = Reader { bytes: attest };
    if r.u32()? != TPM_GENERATED_VALUE || r.u16()? != TPM_ST_ATTEST_QUOTE {
        return Err(Rejected::Malformed(
            "the quote is not a TPM-generated TPMS_ATTEST of type quote".into(),
        ));
    }
    r.sized()?; // qualifiedSigner
    let extra_data = r.sized()?.to_vec();
    r.take(8)?; // clock
    let reset_count = r.u32()?;
    let restart_count = r.u32()?;
    r.u8()?; // safe
    r.take(8)?; // firmwareVersion
    let banks = r.u32()?;
    let mut selection = Vec::new();
    for _ in 0..banks.min(16) {
        let hash = r.u16()?;
        let size = r.u8()? as usize;
        let bitmap = r.take(size)?;
        let pcrs = (0..size * 8)
            .filter(|i| bitmap[i / 8] & (1 << (i % 8)) != 0)
            .filter_map(|i| u8::try_from(i).ok())
            .collect();
        selection.push((hash, pcrs));
    }
    let pcr_digest = r.sized()?.to_vec();
    Ok(QuoteInfo {
        extra_data,
        reset_count,
        restart_count,
        selection,
        pcr_digest,
    })
}

/// `TPMT_SIGNATURE` (ECDSA, SHA-256) as the fixed-width `r ‖ s` ring verifies.
fn parse_signature(signature: &[u8]) -> Result<Vec<u8>, Rejected> {
    let mut r = Reader { bytes: signature };
    if r.u16()? != TPM_ALG_ECDSA || r.u16()? != TPM_ALG_SHA256 {
        return Err(Rejected::Malformed(
            "the signature is not ECDSA with SHA-256".into(),
        ));
    }
    let malformed = || Rejected::Malformed("an ECDSA signature part is over 32 bytes".into());
    let mut fixed = left_pad_32(r.sized()?).ok_or_else(malformed)?.to_vec();
    fixed.extend(left_pad_32(r.sized()?).ok_or_else(malformed)?);
    Ok(fixed)
}

fn field(name: &str, value: Option<Vec<u8>>) -> Result<Vec<u8>, Rejected> {
    value.ok_or_else(|| Rejected::Malformed(format!("{name} is not valid")))
}

/// Verifies `evidence` for `nonce`. With `pinned_key` (the device's attestation key, PEM
/// SubjectPublicKeyInfo, recorded when the device was enrolled), a quote by any other key is
/// refused.
pub fn verify(
    evidence: &Evidence,
    nonce: &[u8],
    pinned_key: Option<&str>,
) -> Result<Verified, Rejected> {
    let carried = field(
        "attestation_key",
        pem_to_der("PUBLIC KEY", &evidence.attestation_key),
    )?;
    if let Some(pinned) = pinned_key {
        let pinned = field("the pinned key", pem_to_der("PUBLIC KEY", pinned))?;
        if pinned != carried {
            return Err(Rejected::ForeignKey);
        }
    }
    let point = p256_point(&carried).ok_or_else(|| {
        Rejected::Malformed("attestation_key is not an ECC P-256 public key".into())
    })?;
    let attest = field("quote", from_base64(&evidence.quote))?;
    let signature = parse_signature(&field("signature", from_base64(&evidence.signature))?)?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(&attest, &signature)
        .map_err(|_| Rejected::BadSignature)?;

    // Everything below is read from the signed structure.
    let quote = parse_quote(&attest)?;
    if quote.extra_data != nonce {
        return Err(Rejected::WrongNonce);
    }
    let listed: Vec<u8> = evidence.pcrs.keys().copied().collect();
    let quoted = match quote.selection.as_slice() {
        [(TPM_ALG_SHA256, pcrs)] => pcrs.clone(),
        _ => Vec::new(),
    };
    if quoted != listed {
        return Err(Rejected::PcrSelection { quoted, listed });
    }
    let mut values = BTreeMap::new();
    let mut hasher = Sha256Hasher::new();
    for (&index, hex) in &evidence.pcrs {
        let value: Sha256 = from_hex(hex)
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| Rejected::Malformed(format!("PCR {index} is not a SHA-256 value")))?;
        hasher.update(value);
        values.insert(index, value);
    }
    if hasher.finalize().as_slice() != quote.pcr_digest.as_slice() {
        return Err(Rejected::PcrDigest);
    }

    let firmware = match &evidence.event_logs.firmware {
        Some(log) => {
            let bytes = field("event_logs.firmware", from_base64(log))?;
            Some(
                parse_firmware_log(&bytes)
                    .map_err(|e| Rejected::Malformed(format!("event_logs.firmware: {e}")))?,
            )
        }
        None => None,
    };
    let application = &evidence.event_logs.application;
    if let Some(stray) = application
        .iter()
        .find(|e| e.pcr != evidence.application_pcr)
    {
        return Err(Rejected::Malformed(format!(
            "an application event names PCR {}, not the application PCR {}",
            stray.pcr, evidence.application_pcr
        )));
    }
    let replays: [(&'static str, BTreeMap<u8, Sha256>); 2] = [
        (
            "firmware",
            firmware.as_ref().map(|f| f.replay()).unwrap_or_default(),
        ),
        (
            "application",
            replay_app(application).map_err(Rejected::Malformed)?,
        ),
    ];

    let mut pcrs = Vec::new();
    for (&index, value) in &values {
        let mut explained_by = None;
        for (log, replayed) in &replays {
            // The application log explains its PCR even when empty: then it must be zero.
            let expected = match replayed.get(&index) {
                Some(expected) => *expected,
                None if *log == "application" && index == evidence.application_pcr => [0; 32],
                None => continue,
            };
            if expected != *value {
                return Err(Rejected::LogMismatch {
                    pcr: index,
                    log,
                    quoted: to_hex(value),
                    replayed: to_hex(&expected),
                });
            }
            explained_by = Some(*log);
        }
        pcrs.push(PcrReport {
            index,
            value: to_hex(value),
            meaning: pcr_meaning(index, evidence.application_pcr),
            explained_by,
        });
    }
    Ok(Verified {
        pcrs,
        key_pinned: pinned_key.is_some(),
        reset_count: quote.reset_count,
        restart_count: quote.restart_count,
        firmware_events: firmware.map_or(0, |f| f.events.len()),
        application_events: application.clone(),
    })
}
