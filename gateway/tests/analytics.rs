//! Sensor stream analytics in the running gateway, on a writable copy of the Raspberry Pi
//! fixture tree whose readings the test changes: an official-SDK (rmcp) client subscribed to
//! `device://alerts` with its log level at `warning`, and a 2026-07-28 client whose listen
//! stream names it, hear of a temperature spike; the tools
//! and the resource report it, a quiet stream stays quiet, a missing sensor says so; the cloud
//! alert waits in the offline queue while its receiver is down and arrives, once, with its
//! token and idempotency key, when it is back; and sampling slows down in low-power.

// Logging and resources/subscribe are how 2025-11-25 clients hear of changes; rmcp marks them
// deprecated for 2026-07-28 (SEP-2577).
#![allow(deprecated)]

use std::path::Path;
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, LoggingLevel, LoggingMessageNotificationParam, ProtocolVersion,
    ReadResourceRequestParams, ResourceContents, ResourceUpdatedNotificationParam,
    ServerNotification, SetLevelRequestParams, SubscribeRequestParams, SubscriptionFilter,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::common::cloud::{CloudServer, Reply};
use crate::common::{free_port, metric, post_json, writable_fixture, Daemon};

const TEMP: &str = "sys/class/thermal/thermal_zone0/temp";
const NORMAL_MILLI_CELSIUS: &str = "48312";

/// What the client hears outside its requests.
#[derive(Debug)]
enum Heard {
    Updated(String),
    Log(LoggingMessageNotificationParam),
}

#[derive(Clone)]
struct Listener(mpsc::UnboundedSender<Heard>);

impl rmcp::ClientHandler for Listener {
    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _cx: NotificationContext<RoleClient>,
    ) {
        let _ = self.0.send(Heard::Updated(params.uri));
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _cx: NotificationContext<RoleClient>,
    ) {
        let _ = self.0.send(Heard::Log(params));
    }
}

fn config(root: &Path, alert_port: u16, interval_ms: u32) -> String {
    format!(
        "[device]\nsystem_root = \"{}\"\n\
         [analytics]\nsample_interval_ms = {interval_ms}\n\
         alert_url = \"http://127.0.0.1:{alert_port}/alerts\"\nalert_token = \"alert-secret\"\n\
         [[analytics.streams]]\nname = \"cpu_temp\"\nsensor = \"thermal/cpu-thermal\"\n\
         warmup_samples = 5\nmin_deviation = 0.5\n\
         [[analytics.streams]]\nname = \"input_current\"\nsensor = \"hwmon/ina3221/curr1\"\n\
         warmup_samples = 5\nmin_deviation = 0.01\n\
         [[analytics.streams]]\nname = \"co2\"\nsensor = \"iio/bme280/co2\"\n",
        root.display()
    )
}

async fn call(
    client: &RunningService<RoleClient, Listener>,
    name: &str,
    arguments: Value,
) -> Value {
    let result = client
        .call_tool(
            CallToolRequestParams::new(name.to_owned())
                .with_arguments(arguments.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{name}: {result:?}");
    result.structured_content.unwrap()
}

/// The stream named `name` from `sensor_streams`.
async fn stream(client: &RunningService<RoleClient, Listener>, name: &str) -> Value {
    let streams = call(client, "sensor_streams", json!({})).await;
    streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no stream {name} in {streams}"))
}

fn queue_status(daemon: &Daemon) -> Value {
    daemon.get("/v1/queue/status").json()
}

#[test]
fn a_sensor_spike_is_announced_reported_and_alerted_once_the_receiver_is_back() {
    let root = writable_fixture("sysroot-rpi4");
    let alert_port = free_port();
    let daemon = Daemon::start(&config(root.path(), alert_port, 200));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (heard, mut hearing) = mpsc::unbounded_channel();
        let transport =
            StreamableHttpClientTransport::from_uri(format!("http://{}/mcp", daemon.addr));
        let client = Listener(heard).serve(transport).await.unwrap();
        client
            .set_level(SetLevelRequestParams::new(LoggingLevel::Warning))
            .await
            .unwrap();
        client
            .subscribe(SubscribeRequestParams::new("device://alerts"))
            .await
            .unwrap();
        // A 2026-07-28 client names the resource in its listen stream instead.
        let modern = ()
            .serve_with_lifecycle(
                StreamableHttpClientTransport::from_uri(format!("http://{}/mcp", daemon.addr)),
                ClientLifecycleMode::Auto {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                    legacy_version: None,
                },
            )
            .await
            .unwrap();
        let mut filter = SubscriptionFilter::builder().build();
        filter.resource_subscriptions = Some(vec!["device://alerts".into()]);
        let mut listening = modern.peer().listen(filter).await.unwrap();
        let tools = client.list_all_tools().await.unwrap();
        for tool in ["sensor_streams", "sensor_anomalies"] {
            assert!(tools.iter().any(|t| t.name == tool), "{tool} not listed");
        }

        // Warm-up: five samples of the unchanged fixture, then scoring.
        let deadline = Instant::now() + Duration::from_secs(20);
        while stream(&client, "cpu_temp").await["state"] != "scoring" {
            assert!(
                Instant::now() < deadline,
                "{}",
                stream(&client, "cpu_temp").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let missing = stream(&client, "co2").await;
        assert_eq!(missing["state"], "no reading", "{missing}");
        assert_eq!(missing["error"], "no sensor iio/bme280/co2 on this device");

        // The CPU jumps from 48.3 to 95 degrees.
        std::fs::write(root.path().join(TEMP), "95000").unwrap();
        let mut updated = false;
        let mut logged = None;
        while !updated || logged.is_none() {
            match tokio::time::timeout(Duration::from_secs(10), hearing.recv()).await {
                Ok(Some(Heard::Updated(uri))) => {
                    assert_eq!(uri, "device://alerts");
                    updated = true;
                }
                Ok(Some(Heard::Log(log))) => logged = Some(log),
                _ => panic!(
                    "no notification of the anomaly (updated: {updated}, logged: {logged:?})"
                ),
            }
        }
        std::fs::write(root.path().join(TEMP), NORMAL_MILLI_CELSIUS).unwrap();
        let next = tokio::time::timeout(Duration::from_secs(10), listening.next()).await;
        match next {
            Ok(Ok(Some(ServerNotification::ResourceUpdatedNotification(update)))) => {
                assert_eq!(update.params.uri, "device://alerts");
            }
            other => panic!("the listen stream did not carry the update: {other:?}"),
        }
        drop(listening);
        modern.cancel().await.unwrap();
        let log = logged.unwrap();
        assert_eq!(log.level, LoggingLevel::Warning);
        assert_eq!(log.logger.as_deref(), Some("mcp-edge.analytics"));
        assert_eq!(log.data["stream"], "cpu_temp");
        assert_eq!(log.data["value"], 95.0);
        // Let the samples still at 95 degrees, if any, be taken and alerted.
        tokio::time::sleep(Duration::from_millis(600)).await;

        let found = call(&client, "sensor_anomalies", json!({ "stream": "cpu_temp" })).await;
        let anomalies = found["anomalies"].as_array().unwrap().clone();
        assert!(!anomalies.is_empty(), "{found}");
        let first = anomalies.last().unwrap();
        assert_eq!(first["sensor"], "thermal/cpu-thermal");
        assert_eq!(first["unit"], "celsius");
        assert!(
            (first["baseline"].as_f64().unwrap() - 48.312).abs() < 0.01,
            "{first}"
        );
        assert!(first["score"].as_f64().unwrap() > 5.0, "{first}");
        let quiet = call(
            &client,
            "sensor_anomalies",
            json!({ "stream": "input_current" }),
        )
        .await;
        assert_eq!(
            quiet["anomalies"],
            json!([]),
            "an unchanged current is not an anomaly"
        );
        assert_eq!(stream(&client, "input_current").await["anomalies"], 0);
        let refused = client
            .call_tool(
                CallToolRequestParams::new("sensor_anomalies")
                    .with_arguments(json!({ "stream": "fan" }).as_object().unwrap().clone()),
            )
            .await
            .unwrap();
        assert_eq!(
            refused.is_error,
            Some(true),
            "an unknown stream is a tool error"
        );

        let read = client
            .read_resource(ReadResourceRequestParams::new("device://alerts"))
            .await
            .unwrap();
        let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else {
            panic!("{read:?}");
        };
        let resource: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            resource["anomalies"].as_array().unwrap().len(),
            anomalies.len()
        );

        // Every anomaly was alerted; the receiver was down, so each one waits in the queue.
        let metrics = daemon.get("/metrics").body;
        let count = anomalies.len() as f64;
        assert_eq!(
            metric(
                &metrics,
                "mcp_edge_sensor_anomalies_total{stream=\"cpu_temp\"}"
            ),
            Some(count),
            "{metrics}"
        );
        assert_eq!(
            metric(&metrics, "mcp_edge_sensor_alerts_total{outcome=\"queued\"}"),
            Some(count)
        );
        assert_eq!(
            metric(&metrics, "mcp_edge_sensor_value{stream=\"co2\"}"),
            None
        );
        assert_eq!(queue_status(&daemon)["queued"], anomalies.len());

        // The receiver comes back on its address; the sync delivers each alert once.
        let receiver = CloudServer::start_on(alert_port, |_, _| Reply::Status(202));
        let sync = post_json(daemon.addr, "/v1/queue/sync", &json!({}));
        assert_eq!(sync.status, 200, "{}", sync.body);
        let status = queue_status(&daemon);
        assert_eq!(status["queued"], 0, "{status}");
        let requests = receiver.requests.lock().unwrap().clone();
        assert_eq!(requests.len(), anomalies.len());
        let mut keys: Vec<String> = requests
            .iter()
            .map(|r| r.idempotency_key.clone().unwrap())
            .collect();
        keys.dedup();
        assert_eq!(keys.len(), requests.len(), "one key per alert");
        for request in &requests {
            assert_eq!(
                request.authorization.as_deref(),
                Some("Bearer alert-secret")
            );
            assert_eq!(request.body["format"], "mcp-edge-alert/1");
            assert_eq!(request.body["device"], "edge-pi-07");
            assert_eq!(request.body["anomaly"]["stream"], "cpu_temp");
        }

        // With the receiver up, the next spike's alert is sent at once, not queued.
        std::fs::write(root.path().join(TEMP), "20000").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while receiver.count() == requests.len() {
            assert!(Instant::now() < deadline, "no alert for the second spike");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::fs::write(root.path().join(TEMP), NORMAL_MILLI_CELSIUS).unwrap();
        let metrics = daemon.get("/metrics").body;
        assert!(metric(&metrics, "mcp_edge_sensor_alerts_total{outcome=\"sent\"}") >= Some(1.0));
        assert_eq!(queue_status(&daemon)["queued"], 0);
        client.cancel().await.unwrap();
    });
}

/// Samples taken by `cpu_temp` in `window`.
fn samples_in(daemon: &Daemon, window: Duration) -> u64 {
    let samples = || {
        let answer = crate::common::mcp_call(
            daemon,
            "",
            "tools/call",
            json!({ "name": "sensor_streams", "arguments": {} }),
        );
        answer["result"]["structuredContent"]["streams"][0]["samples"]
            .as_u64()
            .unwrap_or_else(|| panic!("{answer}"))
    };
    let before = samples();
    std::thread::sleep(window);
    samples() - before
}

#[test]
fn sampling_slows_down_in_low_power() {
    let root = writable_fixture("sysroot-rpi4");
    let daemon = Daemon::start(&config(root.path(), free_port(), 100));
    let normal = samples_in(&daemon, Duration::from_secs(2));
    let body = r#"{"profile": "low-power"}"#;
    let put = crate::common::send(
        &mut daemon.connect(),
        &format!(
            "PUT /v1/power HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(put.status, 200, "{}", put.body);
    // The sleep under way when the profile changed still ends on the old pace.
    std::thread::sleep(Duration::from_millis(200));
    let slow = samples_in(&daemon, Duration::from_secs(2));
    // 100 ms apart, then 400 ms apart: about 20 samples against 5.
    eprintln!("samples in 2 s: {normal} at 100 ms, {slow} in low-power");
    assert!(normal >= 12, "{normal} samples in 2 s at 100 ms");
    assert!(
        (3..=7).contains(&slow),
        "{slow} samples in 2 s in low-power"
    );
}
