//! Responses, and the one JSON shape every error takes:
//! `{"error": {"status": 413, "code": "payload_too_large", "message": "..."}}`.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::json;

/// Every response body: buffered for the gateway's own answers, streamed (SSE) for `/mcp`.
pub type Body = BoxBody<Bytes, std::convert::Infallible>;

/// An error answer. `code` is stable and machine-readable; `message` is for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let body = json!({
            "error": { "status": self.status.as_u16(), "code": self.code, "message": self.message }
        });
        json_response(self.status, &body)
    }
}

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut text = value.to_string();
    text.push('\n');
    with_type(status, "application/json", text)
}

pub fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
