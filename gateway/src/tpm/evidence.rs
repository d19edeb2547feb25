//! What an attestation answer carries (`GET /v1/attestation`, the `attest_device` tool), and
//! the encodings it uses: hex for digests and the nonce, base64 for TPM structures and the
//! firmware log, PEM for keys and certificates.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::eventlog::AppEvent;

/// A quote and everything a verifier needs to check it and to explain the quoted PCRs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The verifier's nonce (hex), which the TPM put in the quote as qualifying data.
    pub nonce: String,
    /// The PCR bank quoted; always `sha256`.
    pub pcr_bank: String,
    /// The quoted PCR values (hex), by index.
    pub pcrs: BTreeMap<u8, String>,
    /// The PCR the gateway measures itself into.
    pub application_pcr: u8,
    /// The marshalled `TPMS_ATTEST` the TPM signed (base64).
    pub quote: String,
    /// The marshalled `TPMT_SIGNATURE` (base64; ECDSA P-256 with SHA-256).
    pub signature: String,
    /// The attestation key's public part (PEM SubjectPublicKeyInfo).
    pub attestation_key: String,
    /// The endorsement key certificate (PEM), when the TPM holds one.
    pub ek_certificate: Option<String>,
    pub event_logs: EventLogs,
}

/// The event logs that explain the quoted PCR values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventLogs {
    /// The firmware's TCG2 log (`binary_bios_measurements`, base64), when the kernel exposes
    /// one.
    pub firmware: Option<String>,
    /// The gateway's own measurements this boot.
    pub application: Vec<AppEvent>,
}

/// What a PCR holds by convention (TCG PC Client profile and the UAPI PCR registry).
pub fn pcr_meaning(index: u8, application_pcr: u8) -> &'static str {
    if index == application_pcr {
        return "mcp-gateway: its binary and effective configuration";
    }
    match index {
        0 => "firmware code",
        1 => "firmware configuration",
        2 => "option ROMs and extra firmware drivers",
        3 => "option ROM configuration",
        4 => "boot loader and the EFI binaries it starts (kernel)",
        5 => "boot loader configuration and the GPT partition table",
        6 => "platform manufacturer events",
        7 => "Secure Boot state and the keys that verified the boot",
        8 => "boot loader commands and kernel command line (GRUB)",
        9 => "kernel and initrd, measured as the boot loader or the kernel loads them",
        10 => "Linux IMA",
        11 => "unified kernel image sections and boot phases",
        12 => "kernel command line, credentials and configuration of a unified kernel image",
        13 => "system extension images",
        14 => "shim's MOK certificates",
        15 => "system identity (machine-id, root file system)",
        16 => "debug (resettable)",
        23 => "application support (resettable)",
        _ => "unassigned",
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex digits (either case); `None` for anything else.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn to_base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

pub fn from_base64(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text.trim()).ok()
}

/// DER wrapped as PEM with `label` (64-character lines).
pub fn der_to_pem(label: &str, der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// The DER inside the first PEM block labelled `label`.
pub fn pem_to_der(label: &str, pem: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem.get(start..)?.find(&end)?;
    let body: String = pem
        .get(start..stop)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    BASE64.decode(body).ok()
}

/// DER prefix of a SubjectPublicKeyInfo for an uncompressed NIST P-256 point: SEQUENCE {
/// SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING { 0x04 ‖ x ‖ y } }.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The SPKI of the P-256 point (`x`, `y`), each at most 32 bytes (the TPM may drop leading
/// zero bytes).
pub fn ecc_p256_spki(x: &[u8], y: &[u8]) -> Option<Vec<u8>> {
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.push(0x04);
    spki.extend(left_pad_32(x)?);
    spki.extend(left_pad_32(y)?);
    Some(spki)
}

/// The uncompressed point (`0x04 ‖ x ‖ y`) inside a P-256 SPKI.
pub fn p256_point(spki: &[u8]) -> Option<&[u8]> {
    let point = spki.strip_prefix(P256_SPKI_PREFIX.as_slice())?;
    (point.len() == 65 && point[0] == 0x04).then_some(point)
}

/// `bytes` as a 32-byte big-endian number.
pub fn left_pad_32(bytes: &[u8]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    let start = 32usize.checked_sub(bytes.len())?;
    out[start..].copy_from_slice(bytes);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_pem_round_trip() {
        assert_eq!(
            from_hex(&to_hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        let der: Vec<u8> = (0..=200).collect();
        let pem = der_to_pem("PUBLIC KEY", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(pem_to_der("PUBLIC KEY", &pem), Some(der));
        assert_eq!(pem_to_der("CERTIFICATE", &pem), None);
    }

    #[test]
    fn p256_spki_holds_the_padded_point() {
        let spki = ecc_p256_spki(&[1; 31], &[2; 32]).expect("fits");
        assert_eq!(spki.len(), 91);
        let point = p256_point(&spki).expect("a P-256 SPKI");
        assert_eq!(point[1], 0);
        assert_eq!(point[2], 1);
        assert!(ecc_p256_spki(&[1; 33], &[2; 32]).is_none());
    }
}
