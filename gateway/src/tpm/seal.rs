//! Secrets sealed to PCR values: a TPM keyed-hash object under a storage key of the owner
//! hierarchy, usable only through a policy session whose PCR values equal the ones at sealing.
//! The blob is useless away from this TPM, or on it after the boot chain, the gateway's binary
//! or its configuration changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What `mcp-gateway secret seal` writes: the sealed object and the PCR values it is bound to
/// (kept to say which PCR changed when unsealing fails).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedSecret {
    pub format: String,
    pub pcr_bank: String,
    /// The PCR values at sealing (hex), by index.
    pub pcrs: BTreeMap<u8, String>,
    /// The marshalled `TPMT_PUBLIC` of the sealed object (base64).
    pub public: String,
    /// Its `TPM2B_PRIVATE` buffer, encrypted by the storage key (base64).
    pub private: String,
}

/// Whether `name` can name a sealed secret (and so a file in `sealed_dir`): letters, digits,
/// '-' and '_'.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The TPM's `sensitive.data` limit for a sealed object.
pub const MAX_SECRET_BYTES: usize = 128;
