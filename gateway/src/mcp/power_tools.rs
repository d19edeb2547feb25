//! The power governor as MCP tools and a resource: `power_status` and the `device://power`
//! resource answer like `GET /v1/power`, `set_power_profile` like `PUT /v1/power`.

use rmcp::model::{CallToolResult, ContentBlock, Resource, Tool};
use serde_json::{json, Value};

use super::builtin::{no_arguments, schema, structured};
use crate::power::Governor;

pub const STATUS: &str = "power_status";
pub const SET: &str = "set_power_profile";
pub const URI: &str = "device://power";

pub fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            STATUS,
            "Power profile in force and why, whether the local model may run, AC and battery, \
             thermal headroom and cpufreq policies of this device.",
            no_arguments(),
        ),
        Tool::new(
            SET,
            "Set the power profile until the gateway restarts: auto (chosen from AC, battery and \
             temperature), performance, balanced or low-power. Returns the status after the change.",
            schema(json!({
                "type": "object",
                "properties": {
                    "profile": {
                        "type": "string",
                        "enum": ["auto", "performance", "balanced", "low-power"]
                    }
                },
                "required": ["profile"],
                "additionalProperties": false
            })),
        ),
    ]
}

pub fn resource() -> Resource {
    Resource::new(URI, "device-power")
        .with_description("The power_status tool's answer, as a resource.")
        .with_mime_type("application/json")
}

/// The status as the resource's text.
pub fn read(governor: &Governor) -> String {
    serde_json::to_string_pretty(&json!(governor.status())).unwrap_or_default()
}

/// A tool error for `generate` while the governor keeps the local model off.
pub fn refuse_local(governor: Option<&Governor>) -> Option<CallToolResult> {
    governor.filter(|g| !g.allows_local_inference()).map(|_| {
        CallToolResult::error(vec![ContentBlock::text(
            "the power governor has turned local inference off (battery critical); try again on mains power",
        )])
    })
}

/// Runs a power tool; `None` when `name` is not one.
pub fn call(
    governor: &Governor,
    name: &str,
    arguments: Option<&serde_json::Map<String, Value>>,
) -> Option<CallToolResult> {
    let answer = match name {
        STATUS => Ok(json!(governor.status())),
        SET => match arguments
            .and_then(|a| a.get("profile"))
            .and_then(Value::as_str)
        {
            Some(profile) => governor
                .set(profile)
                .map(|status| json!(status))
                .map_err(|e| e.to_string()),
            None => Err("profile (a string) is required".into()),
        },
        _ => return None,
    };
    Some(answer.map_or_else(
        |e| CallToolResult::error(vec![ContentBlock::text(e)]),
        structured,
    ))
}
