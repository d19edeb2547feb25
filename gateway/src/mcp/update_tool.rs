//! `update_status`: the A/B update status, the same answer as `GET /v1/update`.

use rmcp::model::{CallToolResult, ContentBlock, Tool};
use serde_json::json;

use super::builtin::{no_arguments, structured};
use crate::update::UpdateStatus;

pub const UPDATE_STATUS: &str = "update_status";

pub fn tool() -> Tool {
    Tool::new(
        UPDATE_STATUS,
        "A/B update status from RAUC: the booted slot, the slot the next boot starts, each \
         slot's boot state (good or bad) and installed bundle version, and whether the newest \
         install is running, awaiting a reboot or was rolled back.",
        no_arguments(),
    )
}

pub async fn call(update: &UpdateStatus) -> CallToolResult {
    match update.read().await {
        Ok(status) => structured(json!(status)),
        Err(e) => CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
    }
}
