//! `GET /v1/attestation?nonce=<hex>`: a TPM quote for the verifier's nonce with the event logs
//! (the evidence `mcp-gateway attest verify` checks).

use std::sync::Arc;

use http::StatusCode;
use serde_json::json;

use super::response::{json_response, ApiError, Body};
use crate::tpm::evidence::from_hex;
use crate::tpm::{AttestError, Attestation};

pub(super) async fn attestation(
    attestation: &Arc<Attestation>,
    query: Option<&str>,
) -> http::Response<Body> {
    let nonce = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("nonce="))
        .and_then(from_hex);
    let Some(nonce) = nonce else {
        return error(AttestError::BadNonce);
    };
    match attestation.evidence_off_runtime(nonce).await {
        Ok(evidence) => json_response(StatusCode::OK, &json!(evidence)),
        Err(e) => error(e),
    }
}

fn error(e: AttestError) -> http::Response<Body> {
    let (status, code) = match &e {
        AttestError::BadNonce => (StatusCode::BAD_REQUEST, "bad_nonce"),
        AttestError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "attestation_unavailable"),
        AttestError::Tpm(_) => (StatusCode::SERVICE_UNAVAILABLE, "tpm_failed"),
    };
    ApiError::new(status, code, e.to_string()).into_response()
}
