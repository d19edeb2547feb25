//! `GET /v1/update`: the A/B update status from RAUC (booted and primary slot, each slot's boot
//! state and bundle, the newest install's outcome).

use http::{Response, StatusCode};
use serde_json::json;

use super::response::{json_response, ApiError, Body};
use crate::update::UpdateStatus;

pub(super) async fn status(update: &UpdateStatus) -> Response<Body> {
    match update.read().await {
        Ok(status) => json_response(StatusCode::OK, &json!(status)),
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "update_unavailable",
            e.to_string(),
        )
        .into_response(),
    }
}
