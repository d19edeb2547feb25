//! `attest_device`: a TPM quote for the caller's nonce, the same evidence as
//! `GET /v1/attestation?nonce=…`, for an MCP client that verifies the device before it trusts
//! its tools.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, Tool};
use serde_json::{json, Value};

use super::builtin::{schema, structured};
use crate::tpm::evidence::from_hex;
use crate::tpm::{AttestError, Attestation};

pub const ATTEST: &str = "attest_device";

pub fn tool() -> Tool {
    Tool::new(
        ATTEST,
        "TPM 2.0 quote of the boot chain (PCRs 0-15) and of the gateway's own measurement, \
         signed by the device's attestation key over your nonce, with the event logs that explain \
         each PCR. Check it with `mcp-gateway attest verify`.",
        schema(json!({
            "type": "object",
            "properties": {
                "nonce": {
                    "type": "string",
                    "description": "A fresh random value, 8 to 64 bytes as hex; the quote is only valid for it."
                }
            },
            "required": ["nonce"],
            "additionalProperties": false
        })),
    )
}

/// Runs `attest_device` on a blocking thread (TPM commands block).
pub async fn call(
    attestation: &Arc<Attestation>,
    arguments: Option<&serde_json::Map<String, Value>>,
) -> CallToolResult {
    let nonce = arguments
        .and_then(|a| a.get("nonce"))
        .and_then(Value::as_str)
        .and_then(from_hex);
    let answer = match nonce {
        Some(nonce) => attestation.evidence_off_runtime(nonce).await,
        None => Err(AttestError::BadNonce),
    };
    match answer {
        Ok(evidence) => structured(json!(evidence)),
        Err(e) => CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
    }
}
