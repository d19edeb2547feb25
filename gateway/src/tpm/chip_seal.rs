//! Sealing and unsealing on the TPM ([`super::seal`] describes the scheme and the file).

use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Digest, KeyedHashScheme, PcrSelectionList, Private, Public, PublicBuilder,
    PublicEccParametersBuilder, PublicKeyedHashParameters, SensitiveData, SymmetricDefinition,
    SymmetricDefinitionObject,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::Context;

use super::chip::{selection, Tpm};
use super::evidence::{from_base64, to_base64, to_hex};
use super::seal::{SealedSecret, MAX_SECRET_BYTES};
use super::TpmError;

/// The `format` of a [`SealedSecret`] this gateway writes and reads.
const FORMAT: &str = "mcp-edge-sealed-v1";

impl Tpm {
    /// Seals `secret` to the current SHA-256 values of `pcrs`.
    pub fn seal(&self, secret: &[u8], pcrs: &[u8]) -> Result<SealedSecret, TpmError> {
        if secret.is_empty() || secret.len() > MAX_SECRET_BYTES {
            return Err(TpmError::Seal(format!(
                "a sealed secret is 1 to {MAX_SECRET_BYTES} bytes; this one is {}",
                secret.len()
            )));
        }
        let values = self.read_pcrs(pcrs)?;
        let pcr_selection = selection(pcrs)?;
        let data =
            SensitiveData::try_from(secret.to_vec()).map_err(|source| TpmError::Command {
                what: "seal",
                source,
            })?;
        let (public, private) = self.with_context("seal", |ctx| {
            let policy = {
                let trial = start_session(ctx, SessionType::Trial, None)?;
                let digest = pcr_policy(ctx, trial, pcr_selection)
                    .and_then(|session| ctx.policy_get_digest(session));
                flush_session(ctx, trial);
                digest?
            };
            // The secret crosses the TPM bus encrypted: an HMAC session salted with the
            // storage key, with command parameter encryption.
            let srk = storage_key(ctx)?;
            let created = start_session(ctx, SessionType::Hmac, Some((srk, Encrypt::Command)))
                .and_then(|session| {
                    let created = ctx.execute_with_session(Some(session), |ctx| {
                        ctx.create(srk, sealed_object(policy)?, None, Some(data), None, None)
                    });
                    flush_session(ctx, session);
                    created
                });
            let _ = ctx.flush_context(srk.into());
            let created = created?;
            Ok((
                created.out_public.marshall()?,
                created.out_private.value().to_vec(),
            ))
        })?;
        Ok(SealedSecret {
            format: FORMAT.into(),
            pcr_bank: "sha256".into(),
            pcrs: values.iter().map(|(i, v)| (*i, to_hex(v))).collect(),
            public: to_base64(&public),
            private: to_base64(&private),
        })
    }

    /// Unseals `sealed`; when the TPM refuses, the error names the PCRs whose values changed
    /// since sealing.
    pub fn unseal(&self, sealed: &SealedSecret) -> Result<Vec<u8>, TpmError> {
        let malformed =
            |what: &str| TpmError::Seal(format!("the sealed secret's {what} is damaged"));
        if sealed.format != FORMAT || sealed.pcr_bank != "sha256" {
            return Err(TpmError::Seal(format!(
                "not a sealed secret of this version (format {:?}, expected {FORMAT:?})",
                sealed.format
            )));
        }
        let public = from_base64(&sealed.public)
            .and_then(|b| Public::unmarshall(&b).ok())
            .ok_or_else(|| malformed("public part"))?;
        let private = from_base64(&sealed.private)
            .and_then(|b| Private::try_from(b).ok())
            .ok_or_else(|| malformed("private part"))?;
        let pcrs: Vec<u8> = sealed.pcrs.keys().copied().collect();
        let pcr_selection = selection(&pcrs)?;
        let unsealed = self.with_context("unseal", |ctx| {
            let srk = storage_key(ctx)?;
            let object =
                match ctx.execute_with_nullauth_session(|ctx| ctx.load(srk, private, public)) {
                    Ok(object) => object,
                    Err(e) => {
                        let _ = ctx.flush_context(srk.into());
                        return Err(e);
                    }
                };
            // The unsealed secret crosses the TPM bus encrypted: the policy session is salted
            // with the storage key and encrypts the response.
            let session = start_session(ctx, SessionType::Policy, Some((srk, Encrypt::Response)));
            let _ = ctx.flush_context(srk.into());
            let unsealed = session.and_then(|session| {
                let result = pcr_policy(ctx, session, pcr_selection).and_then(|_| {
                    ctx.execute_with_session(Some(session), |ctx| ctx.unseal(object.into()))
                });
                flush_session(ctx, session);
                result
            });
            let _ = ctx.flush_context(object.into());
            Ok(unsealed?.value().to_vec())
        });
        unsealed.map_err(|e| match self.changed_pcrs(sealed) {
            Ok(changed) if !changed.is_empty() => TpmError::Seal(format!(
                "the TPM refuses to unseal: PCR {} changed since the secret was sealed (boot chain, gateway binary or configuration); seal it again on the device with `mcp-gateway secret seal` once the change is trusted",
                changed.iter().map(u8::to_string).collect::<Vec<_>>().join(", ")
            )),
            _ => e,
        })
    }

    fn changed_pcrs(&self, sealed: &SealedSecret) -> Result<Vec<u8>, TpmError> {
        let pcrs: Vec<u8> = sealed.pcrs.keys().copied().collect();
        let now = self.read_pcrs(&pcrs)?;
        Ok(now
            .iter()
            .filter(|(i, v)| sealed.pcrs.get(i) != Some(&to_hex(*v)))
            .map(|(i, _)| *i)
            .collect())
    }
}

/// Which parameter a salted session encrypts (a command without that parameter would refuse
/// the attribute).
#[derive(Debug, Clone, Copy)]
enum Encrypt {
    /// The first command parameter (the secret given to `TPM2_Create`).
    Command,
    /// The first response parameter (the secret `TPM2_Unseal` returns).
    Response,
}

/// Starts a session; `salted` salts it with a loaded key (so that only this TPM derives the
/// session key) and turns on parameter encryption.
fn start_session(
    ctx: &mut Context,
    kind: SessionType,
    salted: Option<(KeyHandle, Encrypt)>,
) -> tss_esapi::Result<AuthSession> {
    let session = ctx
        .start_auth_session(
            salted.map(|(key, _)| key),
            None,
            None,
            kind,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )?
        .ok_or(tss_esapi::Error::WrapperError(
            tss_esapi::WrapperErrorKind::WrongValueFromTpm,
        ))?;
    if let Some((_, direction)) = salted {
        let (attributes, mask) = SessionAttributesBuilder::new()
            .with_decrypt(matches!(direction, Encrypt::Command))
            .with_encrypt(matches!(direction, Encrypt::Response))
            .build();
        if let Err(e) = ctx.tr_sess_set_attributes(session, attributes, mask) {
            flush_session(ctx, session);
            return Err(e);
        }
    }
    Ok(session)
}

fn flush_session(ctx: &mut Context, session: AuthSession) {
    let _ = ctx.flush_context(tss_esapi::handles::SessionHandle::from(session).into());
}

/// Runs `PolicyPCR` over the PCRs' current values in `session`.
fn pcr_policy(
    ctx: &mut Context,
    session: AuthSession,
    pcrs: PcrSelectionList,
) -> tss_esapi::Result<PolicySession> {
    let session = PolicySession::try_from(session)?;
    ctx.policy_pcr(session, Digest::default(), pcrs)?;
    Ok(session)
}

/// The storage key sealed objects live under: an ECC P-256 primary of the owner hierarchy
/// from a fixed template, so the TPM derives the same key each time (nothing is persisted).
fn storage_key(ctx: &mut Context) -> tss_esapi::Result<KeyHandle> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()?;
    let template = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(Default::default())
        .build()?;
    Ok(ctx
        .execute_with_nullauth_session(|ctx| {
            ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
        })?
        .key_handle)
}

/// A keyed-hash data object that only `policy` (the PCR policy) can authorize.
fn sealed_object(policy: Digest) -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_auth_policy(policy)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Default::default())
        .build()
}
