//! Attestation evidence as `attest verify` reads it from a device: the JSON, then the key, quote
//! and signature checks. The quote itself is parsed only under a valid signature, so mutated
//! input stops at the signature; the firmware log has its own target.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_edge_gateway::tpm::{verify, Evidence};

fuzz_target!(|data: &[u8]| {
    if let Ok(evidence) = serde_json::from_slice::<Evidence>(data) {
        let _ = verify::verify(&evidence, b"fuzz-nonce", None);
        let _ = verify::verify(&evidence, b"fuzz-nonce", Some(&evidence.attestation_key));
    }
});
