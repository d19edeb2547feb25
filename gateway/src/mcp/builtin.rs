//! The device's own MCP tools, resources and prompts, read live from the system.

use std::sync::{Arc, RwLock};

use rmcp::model::{
    CallToolResult, CompletionInfo, ContentBlock, GetPromptResult, Prompt, PromptArgument,
    PromptMessage, Resource, ResourceContents, Role, Tool,
};
use serde_json::{json, Value};

use crate::config::Config;
use crate::device::{self, SystemRoot};
use crate::telemetry::Metrics;

/// What the built-in tools read from and report about.
#[derive(Debug, Clone)]
pub struct DeviceContext {
    pub root: SystemRoot,
    /// Directory whose file system `device_info` reports (the state directory).
    pub state_dir: std::path::PathBuf,
    /// The configuration in effect, shown with secrets redacted as `gateway://config`.
    pub config: Arc<RwLock<Config>>,
    /// Shown as `gateway://metrics`.
    pub metrics: Arc<Metrics>,
    /// The offline queue behind the `queue_*` tools (none in stdio mode).
    pub queue: Option<crate::queue::OfflineQueue>,
    /// The TPM behind the `attest_device` tool (none in stdio mode).
    pub attestation: Option<Arc<crate::tpm::Attestation>>,
    /// The power governor behind `power_status` and `set_power_profile` (none in stdio mode).
    pub power: Option<Arc<crate::power::Governor>>,
    /// RAUC's slots behind `update_status` (none in stdio mode).
    pub update: Option<crate::update::UpdateStatus>,
    /// Sensor stream analytics behind `sensor_streams`, `sensor_anomalies` and
    /// `device://alerts` (none in stdio mode, or without `[[analytics.streams]]`).
    pub analytics: Option<crate::analytics::StreamProcessor>,
}

const DEVICE_INFO: &str = "device_info";
const DEVICE_SENSORS: &str = "device_sensors";
const NETWORK_LINKS: &str = "network_links";
const DIAGNOSE: &str = "diagnose_device";

const URI_INFO: &str = "device://info";
const URI_CONFIG: &str = "gateway://config";
const URI_METRICS: &str = "gateway://metrics";

/// Symptoms `diagnose_device` knows how to focus on; offered as completions.
const SYMPTOMS: [&str; 5] = ["overheating", "slow", "network", "disk-full", "power"];

pub(super) fn schema(value: Value) -> Arc<serde_json::Map<String, Value>> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::default(),
    }
}

/// The input schema of a tool that takes no arguments.
pub(super) fn no_arguments() -> Arc<serde_json::Map<String, Value>> {
    schema(json!({ "type": "object", "properties": {}, "additionalProperties": false }))
}

pub fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            DEVICE_INFO,
            "Board model, OS, kernel, CPU count, uptime, load average, memory and disk usage of this device.",
            no_arguments(),
        ),
        Tool::new(
            DEVICE_SENSORS,
            "Temperatures, voltages, currents, power and fan speeds from thermal zones, hwmon chips \
             and IIO sensors, in SI units.",
            schema(json!({
                "type": "object",
                "properties": {
                    "source": {
                        "type": "string",
                        "enum": ["all", "thermal", "hwmon", "iio"],
                        "description": "Which sensor class to read (default all)."
                    }
                },
                "additionalProperties": false
            })),
        ),
        Tool::new(
            NETWORK_LINKS,
            "Network interfaces with operational state, carrier, MAC, MTU, speed and byte counters.",
            no_arguments(),
        ),
    ]
}

/// Runs a built-in tool; `None` when `name` is not one. Bad arguments give a tool error
/// result (`isError`), which the model calling the tool can read and correct.
pub fn call_tool(
    context: &DeviceContext,
    name: &str,
    arguments: Option<&serde_json::Map<String, Value>>,
) -> Option<CallToolResult> {
    let value = match name {
        DEVICE_INFO => Ok(json!(device::system_info(
            &context.root,
            &context.state_dir
        ))),
        DEVICE_SENSORS => sensors(context, arguments),
        NETWORK_LINKS => Ok(json!({ "links": device::network_links(&context.root) })),
        _ => return None,
    };
    Some(value.map_or_else(
        |e| CallToolResult::error(vec![ContentBlock::text(e)]),
        structured,
    ))
}

fn sensors(
    context: &DeviceContext,
    arguments: Option<&serde_json::Map<String, Value>>,
) -> Result<Value, String> {
    let source = match arguments.and_then(|a| a.get("source")) {
        None => "all",
        Some(Value::String(s)) if ["all", "thermal", "hwmon", "iio"].contains(&s.as_str()) => {
            s.as_str()
        }
        Some(other) => {
            return Err(format!(
                "source must be one of all, thermal, hwmon, iio; got {other}"
            ))
        }
    };
    let mut out = serde_json::Map::new();
    if matches!(source, "all" | "thermal") {
        out.insert(
            "thermal_zones".into(),
            json!(device::thermal_zones(&context.root)),
        );
    }
    if matches!(source, "all" | "hwmon") {
        out.insert("hwmon".into(), json!(device::hwmon_sensors(&context.root)));
    }
    if matches!(source, "all" | "iio") {
        out.insert("iio".into(), json!(device::iio_sensors(&context.root)));
    }
    Ok(Value::Object(out))
}

/// A result with the JSON both as structured content and as text, for clients of either kind.
pub(super) fn structured(value: Value) -> CallToolResult {
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(value);
    result
}

pub fn resources() -> Vec<Resource> {
    vec![
        Resource::new(URI_INFO, "device-info")
            .with_description("The device_info tool's answer, as a resource.")
            .with_mime_type("application/json"),
        Resource::new(URI_CONFIG, "gateway-config")
            .with_description("The gateway's effective configuration, secrets redacted.")
            .with_mime_type("application/json"),
        Resource::new(URI_METRICS, "gateway-metrics")
            .with_description("The gateway's live metrics in OpenMetrics text.")
            .with_mime_type("text/plain"),
    ]
}

/// Reads a built-in resource; `None` when `uri` is not one.
pub fn read_resource(context: &DeviceContext, uri: &str) -> Option<ResourceContents> {
    let (text, mime) = match uri {
        URI_INFO => (
            pretty(&json!(device::system_info(
                &context.root,
                &context.state_dir
            ))),
            "application/json",
        ),
        URI_CONFIG => {
            let config = context
                .config
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            (pretty(&json!(config)), "application/json")
        }
        URI_METRICS => (context.metrics.encode(), "text/plain"),
        _ => return None,
    };
    Some(ResourceContents::text(text, uri).with_mime_type(mime))
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

pub fn prompts() -> Vec<Prompt> {
    vec![Prompt::new(
        DIAGNOSE,
        Some(
            "Diagnose this device from its live state: temperatures, load, memory, disk and links.",
        ),
        Some(vec![PromptArgument::new("symptom")
            .with_description(format!(
                "What seems wrong: {}, or free text.",
                SYMPTOMS.join(", ")
            ))
            .with_required(false)]),
    )]
}

/// Fills a built-in prompt; `None` when `name` is not one.
pub fn get_prompt(
    context: &DeviceContext,
    name: &str,
    arguments: Option<&serde_json::Map<String, Value>>,
) -> Option<GetPromptResult> {
    if name != DIAGNOSE {
        return None;
    }
    let symptom = arguments
        .and_then(|a| a.get("symptom"))
        .and_then(Value::as_str)
        .unwrap_or("none given");
    let state = json!({
        "system": device::system_info(&context.root, &context.state_dir),
        "thermal_zones": device::thermal_zones(&context.root),
        "hwmon": device::hwmon_sensors(&context.root),
        "network_links": device::network_links(&context.root),
    });
    let text = format!(
        "You are diagnosing an edge Linux device. Reported symptom: {symptom}.\n\n\
         Its live state, read just now:\n```json\n{}\n```\n\n\
         Say what looks abnormal (temperatures near trip points, load above the CPU count, low \
         available memory or disk, links down or without carrier), the most likely cause of the \
         symptom, and the next command an operator should run to confirm it.",
        pretty(&state)
    );
    Some(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]).with_description(
            format!("Diagnosis of {} for: {symptom}", context_name(&state)),
        ),
    )
}

fn context_name(state: &Value) -> String {
    state["system"]["hostname"]
        .as_str()
        .unwrap_or("this device")
        .to_owned()
}

/// Completion of a built-in prompt's argument; `None` when the reference is not built in.
pub fn complete_prompt_argument(
    prompt: &str,
    argument: &str,
    prefix: &str,
) -> Option<CompletionInfo> {
    if prompt != DIAGNOSE || argument != "symptom" {
        return None;
    }
    let values = SYMPTOMS
        .iter()
        .filter(|s| s.starts_with(prefix))
        .map(|s| (*s).to_owned())
        .collect();
    CompletionInfo::new(values).ok()
}
