//! One TPM reached through a TCTI (`device:/dev/tpmrm0`, `swtpm:host=…,port=…`): PCR read and
//! extend, the persistent attestation key, quotes, and the EK certificate.
//!
//! A `tss_esapi::Context` is not `Send`, so each operation opens its own context on the calling
//! thread and closes it (and every transient object) before returning; a mutex keeps commands
//! one at a time, which a TPM without a resource manager (`/dev/tpm0`) needs. Callers on the
//! async runtime use `spawn_blocking`.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Mutex;

use tss_esapi::abstraction::{ak, ek, pcr, AsymmetricAlgorithmSelection};
use tss_esapi::handles::{KeyHandle, ObjectHandle, PcrHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::{
    AsymmetricAlgorithm, HashingAlgorithm, SignatureSchemeAlgorithm,
};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Provision;
use tss_esapi::structures::{
    Data, Digest, DigestValues, HashScheme, PcrSelectionList, PcrSelectionListBuilder, PcrSlot,
    Public, SignatureScheme,
};
use tss_esapi::traits::Marshall;
use tss_esapi::{Context, TctiNameConf};

use super::evidence::{der_to_pem, ecc_p256_spki};
use super::{Quote, Sha256, TpmError, AK_PERSISTENT_HANDLE};

/// The TPM behind one TCTI.
#[derive(Debug)]
pub struct Tpm {
    tcti: String,
    lock: Mutex<()>,
}

impl Tpm {
    /// Checks the TCTI string and that a TPM answers on it (by reading PCR 0).
    pub fn open(tcti: &str) -> Result<Self, TpmError> {
        let tpm = Self {
            tcti: tcti.to_owned(),
            lock: Mutex::new(()),
        };
        tpm.read_pcrs(&[0])?;
        Ok(tpm)
    }

    /// The TCTI this TPM is reached through.
    pub fn tcti(&self) -> &str {
        &self.tcti
    }

    pub(super) fn with_context<T>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut Context) -> tss_esapi::Result<T>,
    ) -> Result<T, TpmError> {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let conf = TctiNameConf::from_str(&self.tcti).map_err(|e| TpmError::Open {
            tcti: self.tcti.clone(),
            message: e.to_string(),
        })?;
        let mut context = Context::new(conf).map_err(|e| TpmError::Open {
            tcti: self.tcti.clone(),
            message: e.to_string(),
        })?;
        f(&mut context).map_err(|source| TpmError::Command { what, source })
    }

    /// SHA-256 bank values of `pcrs`.
    pub fn read_pcrs(&self, pcrs: &[u8]) -> Result<BTreeMap<u8, Sha256>, TpmError> {
        let selection = selection(pcrs)?;
        let data = self.with_context("PCR read", |ctx| pcr::read_all(ctx, selection))?;
        let bank = data
            .pcr_bank(HashingAlgorithm::Sha256)
            .ok_or(TpmError::NoSha256Bank)?;
        let mut values = BTreeMap::new();
        for &index in pcrs {
            let digest = bank
                .get_digest(slot(index)?)
                .ok_or(TpmError::NoSha256Bank)?;
            values.insert(index, sha256_of(digest)?);
        }
        Ok(values)
    }

    /// Extends `pcr` in the SHA-256 bank with `digest`.
    pub fn extend(&self, pcr: u8, digest: &Sha256) -> Result<(), TpmError> {
        let handle = PcrHandle::try_from(ObjectHandle::from(u32::from(pcr)))
            .map_err(|_| TpmError::PcrOutOfRange(pcr))?;
        let mut values = DigestValues::new();
        values.set(
            HashingAlgorithm::Sha256,
            Digest::try_from(digest.as_slice()).map_err(|source| TpmError::Command {
                what: "PCR extend",
                source,
            })?,
        );
        self.with_context("PCR extend", |ctx| {
            ctx.execute_with_nullauth_session(|ctx| ctx.pcr_extend(handle, values))
        })
    }

    /// The attestation key's public part as a DER SubjectPublicKeyInfo (ECC P-256), creating
    /// the key under the endorsement hierarchy and persisting it at [`AK_PERSISTENT_HANDLE`]
    /// the first time.
    pub fn attestation_key(&self) -> Result<Vec<u8>, TpmError> {
        let public = self.with_context("attestation key", |ctx| {
            let handle = match persistent_ak(ctx) {
                Ok(handle) => handle,
                Err(_) => create_persistent_ak(ctx)?,
            };
            Ok(ctx.read_public(handle)?.0)
        })?;
        ak_spki(&public)
    }

    /// A quote over the SHA-256 values of `pcrs` with `nonce` as qualifying data, signed by the
    /// attestation key. The PCRs are read before and after; a quote they changed around is
    /// taken again.
    pub fn quote(&self, nonce: &[u8], pcrs: &[u8]) -> Result<Quote, TpmError> {
        let qualifying = Data::try_from(nonce.to_vec()).map_err(|_| TpmError::NonceTooLong)?;
        for _ in 0..3 {
            let before = self.read_pcrs(pcrs)?;
            let selection = selection(pcrs)?;
            let qualifying = qualifying.clone();
            let (attest, signature) = self.with_context("quote", |ctx| {
                let handle = persistent_ak(ctx)?;
                let (attest, signature) = ctx.execute_with_nullauth_session(|ctx| {
                    ctx.quote(
                        handle,
                        qualifying,
                        SignatureScheme::EcDsa {
                            hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
                        },
                        selection,
                    )
                })?;
                Ok((attest.marshall()?, signature.marshall()?))
            })?;
            if self.read_pcrs(pcrs)? == before {
                return Ok(Quote {
                    attest,
                    signature,
                    pcrs: before,
                });
            }
        }
        Err(TpmError::PcrsKeptChanging)
    }

    /// The endorsement key certificate (PEM) from the TPM's NV storage, when the manufacturer
    /// (or `swtpm_setup --create-ek-cert`) put one there: RSA 2048 first, then ECC P-256.
    pub fn ek_certificate(&self) -> Option<String> {
        [
            AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
            AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
        ]
        .into_iter()
        .find_map(|alg| {
            self.with_context("EK certificate", |ctx| ek::retrieve_ek_pubcert(ctx, alg))
                .ok()
        })
        .map(|der| der_to_pem("CERTIFICATE", &der))
    }
}

fn slot(index: u8) -> Result<PcrSlot, TpmError> {
    1u32.checked_shl(u32::from(index))
        .and_then(|bit| PcrSlot::try_from(bit).ok())
        .ok_or(TpmError::PcrOutOfRange(index))
}

pub(super) fn selection(pcrs: &[u8]) -> Result<PcrSelectionList, TpmError> {
    let slots = pcrs
        .iter()
        .map(|&i| slot(i))
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(|source| TpmError::Command {
            what: "PCR selection",
            source,
        })
}

fn sha256_of(digest: &Digest) -> Result<Sha256, TpmError> {
    digest
        .value()
        .try_into()
        .map_err(|_| TpmError::NoSha256Bank)
}

fn persistent_ak(ctx: &mut Context) -> tss_esapi::Result<KeyHandle> {
    let handle = PersistentTpmHandle::new(AK_PERSISTENT_HANDLE)?;
    let object =
        ctx.execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::Persistent(handle)))?;
    Ok(KeyHandle::from(object))
}

/// EK (RSA 2048, default template) → AK (ECC P-256, ECDSA-SHA256, restricted signing) → made
/// persistent; the transient EK and AK are flushed.
fn create_persistent_ak(ctx: &mut Context) -> tss_esapi::Result<KeyHandle> {
    let ek = ek::create_ek_object(ctx, AsymmetricAlgorithm::Rsa, None)?;
    let created = ak::create_ak(
        ctx,
        ek,
        HashingAlgorithm::Sha256,
        SignatureSchemeAlgorithm::EcDsa,
        None,
        None,
    );
    let loaded =
        created.and_then(|key| ak::load_ak(ctx, ek, None, key.out_private, key.out_public));
    let _ = ctx.flush_context(ek.into());
    let transient = loaded?;
    let persistent = Persistent::Persistent(PersistentTpmHandle::new(AK_PERSISTENT_HANDLE)?);
    let made = ctx.execute_with_nullauth_session(|ctx| {
        ctx.evict_control(Provision::Owner, transient.into(), persistent)
    });
    let _ = ctx.flush_context(transient.into());
    Ok(KeyHandle::from(made?))
}

/// The SPKI of the key at the AK handle, which must be a restricted ECC P-256 signing key.
fn ak_spki(public: &Public) -> Result<Vec<u8>, TpmError> {
    let attributes = public.object_attributes();
    match public {
        Public::Ecc { unique, .. } if attributes.restricted() && attributes.sign_encrypt() => {
            ecc_p256_spki(unique.x().value(), unique.y().value())
                .ok_or(TpmError::UnexpectedAk(AK_PERSISTENT_HANDLE))
        }
        _ => Err(TpmError::UnexpectedAk(AK_PERSISTENT_HANDLE)),
    }
}
