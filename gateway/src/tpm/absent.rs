//! The TPM in a build without the `tpm` feature (no tss-esapi, no libtss2): a [`Tpm`] that
//! cannot be opened. Everything that needs one gets [`TpmError::NotBuilt`], which says what to
//! change; the methods exist so that callers compile unchanged, and cannot be reached.

use std::collections::BTreeMap;

use super::seal::SealedSecret;
use super::{Quote, Sha256, TpmError};

/// No TPM: this type has no values.
#[derive(Debug)]
pub enum Tpm {}

impl Tpm {
    /// Always [`TpmError::NotBuilt`].
    pub fn open(_tcti: &str) -> Result<Self, TpmError> {
        Err(TpmError::NotBuilt)
    }

    pub fn tcti(&self) -> &str {
        match *self {}
    }

    pub fn read_pcrs(&self, _pcrs: &[u8]) -> Result<BTreeMap<u8, Sha256>, TpmError> {
        match *self {}
    }

    pub fn extend(&self, _pcr: u8, _digest: &Sha256) -> Result<(), TpmError> {
        match *self {}
    }

    pub fn attestation_key(&self) -> Result<Vec<u8>, TpmError> {
        match *self {}
    }

    pub fn quote(&self, _nonce: &[u8], _pcrs: &[u8]) -> Result<Quote, TpmError> {
        match *self {}
    }

    pub fn ek_certificate(&self) -> Option<String> {
        match *self {}
    }

    pub fn seal(&self, _secret: &[u8], _pcrs: &[u8]) -> Result<SealedSecret, TpmError> {
        match *self {}
    }

    pub fn unseal(&self, _sealed: &SealedSecret) -> Result<Vec<u8>, TpmError> {
        match *self {}
    }
}
