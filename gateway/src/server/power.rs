//! The power governor over HTTP: `GET /v1/power` (profile, reason, readings, cpufreq) and
//! `PUT /v1/power` with `{"profile": "auto" | "performance" | "balanced" | "low-power"}`, which
//! holds until the next restart.

use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::response::{json_response, ApiError, Body};
use crate::power::Governor;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetProfile {
    profile: String,
}

/// `GET /v1/power`.
pub(super) fn status(governor: &Governor) -> Response<Body> {
    json_response(StatusCode::OK, &json!(governor.status()))
}

/// `PUT /v1/power`: sets the profile and answers with the status after applying it.
pub(super) fn set(governor: &Governor, body: &[u8]) -> Response<Body> {
    let request: SetProfile = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("expected {{\"profile\": \"auto\" | \"performance\" | \"balanced\" | \"low-power\"}}: {e}"),
            )
            .into_response()
        }
    };
    match governor.set(&request.profile) {
        Ok(status) => json_response(StatusCode::OK, &json!(status)),
        Err(e) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()).into_response()
        }
    }
}
