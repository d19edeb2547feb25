//! The offline queue as MCP tools: `queue_status`, `sync_offline_queue` and `queue_entry`,
//! the same answers as `GET /v1/queue/status`, `POST /v1/queue/sync` and `GET /v1/queue/{id}`.

use rmcp::model::{CallToolResult, ContentBlock, Tool};
use serde_json::{json, Value};

use super::builtin::{no_arguments, schema, structured};
use crate::queue::OfflineQueue;

pub const STATUS: &str = "queue_status";
pub const SYNC: &str = "sync_offline_queue";
pub const ENTRY: &str = "queue_entry";

pub fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            STATUS,
            "Depth, oldest age, size and last sync of the offline queue (requests waiting for the link).",
            no_arguments(),
        ),
        Tool::new(
            SYNC,
            "Deliver what waits in the offline queue now; returns how many were delivered, failed and remain.",
            no_arguments(),
        ),
        Tool::new(
            ENTRY,
            "State of one queued request by its id, with the answer once it was delivered.",
            schema(json!({
                "type": "object",
                "properties": { "id": { "type": "string", "description": "The id the request was acknowledged with (q-...)." } },
                "required": ["id"],
                "additionalProperties": false
            })),
        ),
    ]
}

/// Runs a queue tool; `None` when `name` is not one.
pub async fn call(
    queue: &OfflineQueue,
    name: &str,
    arguments: Option<&serde_json::Map<String, Value>>,
) -> Option<CallToolResult> {
    let answer = match name {
        STATUS => queue
            .status()
            .await
            .map(|s| json!(s))
            .map_err(|e| e.to_string()),
        SYNC => queue
            .sync_offline_queue()
            .await
            .map(|r| json!(r))
            .map_err(|e| e.to_string()),
        ENTRY => match arguments.and_then(|a| a.get("id")).and_then(Value::as_str) {
            Some(id) => match queue.entry(id).await {
                Ok(Some(entry)) => Ok(json!(entry)),
                Ok(None) => Err(format!("no queued entry {id:?}")),
                Err(e) => Err(e.to_string()),
            },
            None => Err("id (a string) is required".into()),
        },
        _ => return None,
    };
    Some(answer.map_or_else(
        |e| CallToolResult::error(vec![ContentBlock::text(e)]),
        structured,
    ))
}
