//! The core's own tools: the gateway's routing decision and the offline queue's codecs, over
//! MCP (what `mcp-edge-core`, the WASM build, serves).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::codec::Codec;
use crate::mcp::{Tool, Toolbox};
use crate::routing::{
    Backend, CloudState, LocalState, ModelRouter, PolicyRouter, RouteInputs, Routing,
};

/// `route_request`, `queue_encode` and `queue_decode`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoreTools;

impl Toolbox for CoreTools {
    fn tools(&self) -> Vec<Tool> {
        vec![
            Tool {
                name: "route_request",
                description: "Which backend the gateway's routing policy (models.routing) picks for a request, why, and where it falls back, given the state of the local model and the cloud.",
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "routing": {"type": "string", "enum": ["local_first", "cloud_first", "local_only", "cloud_only"]},
                        "fallback_threshold_ms": {"type": "integer", "minimum": 0, "description": "models.fallback_threshold_ms"},
                        "requested": {"type": "string", "enum": ["local", "cloud"], "description": "the backend the request asked for"},
                        "local": {
                            "type": "object",
                            "description": "absent when no local model is loaded",
                            "properties": {
                                "pending": {"type": "integer", "minimum": 0},
                                "max_queued": {"type": "integer", "minimum": 0},
                                "estimated_first_token_ms": {"type": "integer", "minimum": 0},
                                "paused": {"type": "boolean"}
                            },
                            "required": ["pending", "max_queued"],
                            "additionalProperties": false
                        },
                        "cloud": {
                            "type": "object",
                            "description": "absent when no cloud endpoint is configured",
                            "properties": {"available": {"type": "boolean"}},
                            "required": ["available"],
                            "additionalProperties": false
                        }
                    },
                    "required": ["routing", "fallback_threshold_ms"],
                    "additionalProperties": false
                }),
            },
            Tool {
                name: "queue_encode",
                description: "A JSON payload as the offline queue stores it: serialized and encoded with lz4 (the default) or none, returned as base64.",
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "payload": {"description": "any JSON value"},
                        "codec": {"type": "string", "enum": ["lz4", "none"]}
                    },
                    "required": ["payload"],
                    "additionalProperties": false
                }),
            },
            Tool {
                name: "queue_decode",
                description: "The JSON payload of a stored queue entry: its codec's name and its bytes as base64.",
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "codec": {"type": "string", "enum": ["lz4", "none"]},
                        "stored_base64": {"type": "string"}
                    },
                    "required": ["codec", "stored_base64"],
                    "additionalProperties": false
                }),
            },
        ]
    }

    fn call(&self, name: &str, arguments: &Map<String, Value>) -> Option<Result<Value, String>> {
        Some(match name {
            "route_request" => arguments_of(arguments).and_then(route_request),
            "queue_encode" => arguments_of(arguments).and_then(queue_encode),
            "queue_decode" => arguments_of(arguments).and_then(queue_decode),
            _ => return None,
        })
    }
}

fn arguments_of<A: DeserializeOwned>(arguments: &Map<String, Value>) -> Result<A, String> {
    serde_json::from_value(Value::Object(arguments.clone()))
        .map_err(|e| format!("invalid arguments: {e}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteArguments {
    routing: Routing,
    fallback_threshold_ms: u64,
    requested: Option<Backend>,
    local: Option<LocalArguments>,
    cloud: Option<CloudState>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalArguments {
    pending: usize,
    max_queued: usize,
    estimated_first_token_ms: Option<u64>,
    #[serde(default)]
    paused: bool,
}

fn route_request(arguments: RouteArguments) -> Result<Value, String> {
    let router = PolicyRouter {
        routing: arguments.routing,
        threshold: Duration::from_millis(arguments.fallback_threshold_ms),
    };
    let inputs = RouteInputs {
        requested: arguments.requested,
        local: arguments.local.map(|l| LocalState {
            pending: l.pending,
            max_queued: l.max_queued,
            estimated_first_token: l.estimated_first_token_ms.map(Duration::from_millis),
            paused: l.paused,
        }),
        cloud: arguments.cloud,
    };
    let choice = router.select_model(&inputs)?;
    let fallback = router.fallback_strategy(&inputs, choice.backend);
    Ok(json!({
        "backend": choice.backend,
        "reason": choice.reason,
        "fallback": {
            "to": fallback.to,
            "first_token_deadline_ms": fallback.first_token_deadline.map(|d| d.as_millis() as u64),
        },
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EncodeArguments {
    payload: Value,
    codec: Option<String>,
}

fn queue_encode(arguments: EncodeArguments) -> Result<Value, String> {
    let codec = codec_named(arguments.codec.as_deref().unwrap_or("lz4"))?;
    let raw = arguments.payload.to_string().into_bytes();
    let stored = codec.encode(&raw);
    Ok(json!({
        "codec": codec.name(),
        "stored_base64": BASE64.encode(&stored),
        "raw_bytes": raw.len(),
        "stored_bytes": stored.len(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecodeArguments {
    codec: String,
    stored_base64: String,
}

fn queue_decode(arguments: DecodeArguments) -> Result<Value, String> {
    let codec = codec_named(&arguments.codec)?;
    let stored = BASE64
        .decode(arguments.stored_base64.as_bytes())
        .map_err(|e| format!("stored_base64 is not base64: {e}"))?;
    let raw = codec
        .decode(&stored)
        .map_err(|e| format!("the bytes do not decode as {}: {e}", codec.name()))?;
    let payload: Value =
        serde_json::from_slice(&raw).map_err(|e| format!("the payload is not JSON: {e}"))?;
    Ok(json!({"payload": payload}))
}

fn codec_named(name: &str) -> Result<Codec, String> {
    Codec::from_name(name).ok_or_else(|| match name {
        "zstd" => {
            "zstd needs the zstd C library, which the portable core does not link: use lz4 or none"
                .to_owned()
        }
        other => format!("unknown codec {other:?}: lz4 or none"),
    })
}
