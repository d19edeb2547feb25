//! Anomalies as cloud alerts: each is POSTed as JSON to `analytics.alert_url` at once; one
//! that cannot be delivered now (no link, a timeout, a 5xx or 429) is stored in the offline
//! queue under its id and delivered by the queue's sync, with the id as `Idempotency-Key`
//! both times so that the receiver can drop a duplicate.

use std::time::Duration;

use serde_json::{json, Value};
use tracing::{info, warn};

use super::Anomaly;
use crate::config::{AnalyticsConfig, Secret};
use crate::queue::{new_id, OfflineQueue, Outcome};
use crate::telemetry::Metrics;

/// Offline queue entry kind of an alert; its target is the URL it goes to.
pub const ALERT: &str = "alert";
/// `format` of an alert body; changes only with an incompatible schema.
pub const FORMAT: &str = "mcp-edge-alert/1";
/// Longest wait for one POST.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends alerts to one URL.
#[derive(Debug, Clone)]
pub struct AlertSender {
    http: reqwest::Client,
    url: String,
    token: Option<Secret>,
    /// The device's host name, so that a fleet's receiver knows who is speaking.
    device: Option<String>,
}

impl AlertSender {
    /// A sender for `analytics.alert_url`; `None` without one.
    pub fn from_config(
        config: &AnalyticsConfig,
        device: Option<String>,
    ) -> Result<Option<Self>, String> {
        let Some(url) = &config.alert_url else {
            return Ok(None);
        };
        crate::tls::install_client_provider();
        let http = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .build()
            .map_err(|e| format!("analytics.alert_url: cannot set up the HTTP client: {e}"))?;
        Ok(Some(Self {
            http,
            url: url.clone(),
            token: config.alert_token.clone(),
            device,
        }))
    }

    /// The body of an alert about `anomaly`.
    pub fn body(&self, anomaly: &Anomaly) -> Value {
        json!({
            "format": FORMAT,
            "kind": "sensor_anomaly",
            "gateway_version": crate::version(),
            "device": self.device,
            "anomaly": anomaly,
        })
    }

    /// Sends the alert now, or stores it in `queue` for the sync to deliver.
    pub async fn raise(&self, anomaly: &Anomaly, queue: &OfflineQueue, metrics: &Metrics) {
        let id = new_id();
        let body = self.body(anomaly);
        let why = match self.post(&self.url, &id, &body).await {
            Outcome::Delivered(_) => {
                metrics.alert("sent");
                return;
            }
            Outcome::Failed(why) => {
                // The receiver refused this alert itself: storing it would only fail again.
                warn!(stream = %anomaly.stream, alert_url = %self.url, "alert refused: {why}");
                metrics.alert("refused");
                return;
            }
            Outcome::Retry(why) => why,
        };
        match queue
            .queue_for_sync_as(id.clone(), ALERT, &self.url, body)
            .await
        {
            Ok(_) => {
                info!(stream = %anomaly.stream, id, "alert queued until it can be delivered: {why}");
                metrics.alert("queued");
            }
            Err(e) => {
                warn!(stream = %anomaly.stream, "alert lost: it could not be sent ({why}) nor queued ({e})");
                metrics.alert("lost");
            }
        }
    }

    /// One POST of `body` to `url` under the idempotency key `id`. Also how the queue's sync
    /// delivers a stored alert.
    pub async fn post(&self, url: &str, id: &str, body: &Value) -> Outcome {
        let mut request = self.http.post(url).header("idempotency-key", id).json(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                Outcome::Delivered(json!({ "status": response.status().as_u16() }))
            }
            Ok(response) => {
                let status = response.status();
                let why = format!("{url} answered {status}");
                if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
                    Outcome::Retry(why)
                } else {
                    Outcome::Failed(why)
                }
            }
            Err(e) => Outcome::Retry(format!("cannot reach {url}: {e}")),
        }
    }
}
