//! Sensor stream analytics over MCP: the `sensor_streams` and `sensor_anomalies` tools, the
//! `device://alerts` resource (subscribable: an anomaly updates it), and each anomaly as a
//! `warning` log notification.

use rmcp::model::{
    CallToolResult, ContentBlock, LoggingLevel, LoggingMessageNotificationParam, Notification,
    Resource, ResourceUpdatedNotificationParam, ServerNotification, Tool,
};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::builtin::{no_arguments, schema, structured};
use super::McpGateway;
use crate::analytics::{Anomaly, StreamProcessor, RECENT_ANOMALIES};

pub const STREAMS: &str = "sensor_streams";
pub const ANOMALIES: &str = "sensor_anomalies";
pub const URI: &str = "device://alerts";
/// The `logger` of an anomaly's log notification.
const LOGGER: &str = "mcp-edge.analytics";

pub fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            STREAMS,
            "The sensor streams this device scores for anomalies: each one's sensor, last value, \
             moving baseline and spread, last score, threshold and anomaly count.",
            no_arguments(),
        ),
        Tool::new(
            ANOMALIES,
            "Recent sensor anomalies, newest first: stream, value, the baseline it was judged \
             against, its robust z-score and when.",
            schema(json!({
                "type": "object",
                "properties": {
                    "stream": { "type": "string", "description": "Only this stream's anomalies." },
                    "limit": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": RECENT_ANOMALIES,
                        "description": format!("At most this many (default {RECENT_ANOMALIES}).")
                    }
                },
                "additionalProperties": false
            })),
        ),
    ]
}

pub fn resource() -> Resource {
    Resource::new(URI, "device-alerts")
        .with_description(
            "Recent sensor anomalies, newest first; subscribe to be told of each new one.",
        )
        .with_mime_type("application/json")
}

/// The resource's text.
pub fn read(analytics: &StreamProcessor) -> String {
    serde_json::to_string_pretty(&json!({ "anomalies": analytics.recent(None, RECENT_ANOMALIES) }))
        .unwrap_or_default()
}

/// Runs an analytics tool; `None` when `name` is not one.
pub fn call(
    analytics: &StreamProcessor,
    name: &str,
    arguments: Option<&serde_json::Map<String, Value>>,
) -> Option<CallToolResult> {
    let answer = match name {
        STREAMS => Ok(json!({ "streams": analytics.streams() })),
        ANOMALIES => anomalies(analytics, arguments),
        _ => return None,
    };
    Some(answer.map_or_else(
        |e| CallToolResult::error(vec![ContentBlock::text(e)]),
        structured,
    ))
}

fn anomalies(
    analytics: &StreamProcessor,
    arguments: Option<&serde_json::Map<String, Value>>,
) -> Result<Value, String> {
    let argument = |key: &str| arguments.and_then(|a| a.get(key));
    let stream = match argument("stream") {
        None => None,
        Some(Value::String(s)) if analytics.has_stream(s) => Some(s.as_str()),
        Some(other) => {
            return Err(format!(
                "stream {other} is not a configured sensor stream; sensor_streams lists them"
            ))
        }
    };
    let limit = match argument("limit") {
        None => RECENT_ANOMALIES,
        Some(value) => value
            .as_u64()
            .filter(|n| (1..=RECENT_ANOMALIES as u64).contains(n))
            .ok_or_else(|| {
                format!("limit must be an integer from 1 to {RECENT_ANOMALIES}; got {value}")
            })? as usize,
    };
    Ok(json!({ "anomalies": analytics.recent(stream, limit) }))
}

impl McpGateway {
    /// Tells clients of each anomaly until the gateway shuts down: an update of
    /// `device://alerts` to the sessions subscribed to it and the listen streams that name it,
    /// and a `warning` log notification to every session when the log level set admits it.
    pub(super) fn announce_anomalies(&self, analytics: &StreamProcessor) {
        let mut anomalies = analytics.subscribe();
        let gateway = self.clone();
        tokio::spawn(async move {
            loop {
                let anomaly = tokio::select! {
                    received = anomalies.recv() => match received {
                        Ok(anomaly) => anomaly,
                        // Announcements are a hint; the resource holds every recent anomaly.
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return,
                    },
                    _ = gateway.inner.shutdown.cancelled() => return,
                };
                gateway.announce(&anomaly).await;
            }
        });
    }

    async fn announce(&self, anomaly: &Anomaly) {
        let update = ResourceUpdatedNotificationParam::new(URI);
        for peer in self.subscribers(URI) {
            let _ = peer.notify_resource_updated(update.clone()).await;
        }
        self.notify_listeners(&[ServerNotification::ResourceUpdatedNotification(
            Notification::new(update),
        )])
        .await;
        if !self.logs(LoggingLevel::Warning) {
            return;
        }
        let message = LoggingMessageNotificationParam::new(LoggingLevel::Warning, json!(anomaly))
            .with_logger(LOGGER);
        let sessions = self.sessions().clone();
        for peer in sessions {
            let _ = peer.notify_logging_message(message.clone()).await;
        }
    }
}
