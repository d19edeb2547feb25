//! The offline queue with real processes: the gateway binary, its SQLite file on disk, and an
//! OpenAI-compatible endpoint on loopback that goes down, comes back, loses answers, and
//! deduplicates by `Idempotency-Key` as a real API does. The gateway is killed with SIGKILL,
//! its file system fills up, and its clients count every acknowledgement.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common;
use crate::common::cloud::{CloudServer, Reply, Request};
use crate::common::{config_file, metric, post_json, try_post_json, Daemon, BIN};

/// A small deterministic generator; the seed is printed so a failing run can be repeated.
struct Lcg(u64);

impl Lcg {
    fn from_clock() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        eprintln!("random seed {seed}");
        Lcg(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// The endpoint's side of idempotency: the first request with a key is processed and its
/// answer kept; a repeat of the key gets the kept answer and is counted as a replay.
#[derive(Default)]
struct Ledger {
    /// key → answer it was given the first time.
    answers: BTreeMap<String, String>,
    /// Requests that repeated a key already processed.
    replays: u64,
}

impl Ledger {
    fn answer(&mut self, key: &str, number: usize) -> String {
        if let Some(answer) = self.answers.get(key) {
            self.replays += 1;
            return answer.clone();
        }
        let answer = format!("answer {number} for {key}");
        self.answers.insert(key.to_owned(), answer.clone());
        answer
    }
}

/// The nonce a test request carries in its user message.
fn nonce(request: &Request) -> Option<String> {
    request.body["messages"][0]["content"]
        .as_str()
        .map(str::to_owned)
}

/// Every nonce the endpoint received with an `Idempotency-Key`, and the keys it came under.
fn keys_per_nonce(cloud: &CloudServer) -> BTreeMap<String, BTreeSet<String>> {
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for request in cloud.requests.lock().unwrap().iter() {
        if let (Some(nonce), Some(key)) = (nonce(request), &request.idempotency_key) {
            keys.entry(nonce).or_default().insert(key.clone());
        }
    }
    keys
}

fn deferred(nonce: &str) -> Value {
    json!({
        "model": "cloud-test-model",
        "messages": [{ "role": "user", "content": nonce }],
        "defer": true,
    })
}

fn config(cloud: &CloudServer, queue: &Path, extra: &str) -> String {
    format!(
        "[models]\ncloud_endpoint = \"{}\"\ncloud_retries = 0\ncircuit_breaker_failures = 3\n\
         circuit_breaker_cooldown_ms = 200\n\
         [offline]\npersistence_path = \"{}\"\nsync_interval_seconds = 1\n{extra}",
        cloud.endpoint(),
        queue.display()
    )
}

fn status(daemon: &Daemon) -> Value {
    let response = daemon.get("/v1/queue/status");
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()
}

/// Forces sync rounds until nothing waits; panics with the last status after `limit`.
fn drain(addr: SocketAddr, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let report = post_json(addr, "/v1/queue/sync", &json!({}));
        assert_eq!(report.status, 200, "{}", report.body);
        let report = report.json();
        if report["remaining"] == 0 {
            return report;
        }
        assert!(Instant::now() < deadline, "queue not drained: {report}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The answer text stored for a delivered entry.
fn stored_answer(daemon: &Daemon, id: &str) -> String {
    let entry = daemon.get(&format!("/v1/queue/{id}"));
    assert_eq!(entry.status, 200, "{}", entry.body);
    let entry = entry.json();
    assert_eq!(entry["state"], "delivered", "{entry}");
    entry["result"]["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no answer stored: {entry}"))
        .to_owned()
}

#[test]
fn a_deferred_completion_is_acknowledged_durably_and_delivered_when_the_cloud_returns() {
    let cloud = CloudServer::start(|_, _| Reply::Status(503));
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    let daemon = Daemon::start(&config(&cloud, &queue, ""));

    // Without `defer` the caller hears that no model can answer; nothing is queued.
    let plain = post_json(
        daemon.addr,
        "/v1/chat/completions",
        &json!({ "messages": [{ "role": "user", "content": "now or never" }] }),
    );
    assert_eq!(plain.status, 503, "{}", plain.body);
    assert_eq!(status(&daemon)["queued"], 0);

    let accepted = post_json(
        daemon.addr,
        "/v1/chat/completions",
        &deferred("later please"),
    );
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let body = accepted.json();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        accepted.header("location"),
        Some(format!("/v1/queue/{id}").as_str())
    );
    assert_eq!(accepted.header("x-mcp-edge-backend"), Some("queue"));
    assert!(
        body["reason"].as_str().unwrap().contains("503"),
        "the reason names the failure: {body}"
    );
    let entry = daemon.get(&format!("/v1/queue/{id}")).json();
    assert_eq!(entry["state"], "queued", "{entry}");
    let before = status(&daemon);
    assert_eq!(before["queued"], 1, "{before}");
    assert!(before["bytes"].as_u64().unwrap() > 0, "{before}");

    // A forced sync while the cloud is still down delivers nothing and says why.
    let report = post_json(daemon.addr, "/v1/queue/sync", &json!({})).json();
    assert_eq!(
        (report["delivered"].as_u64(), report["remaining"].as_u64()),
        (Some(0), Some(1)),
        "{report}"
    );
    assert!(report["error"].as_str().is_some(), "{report}");

    cloud.set_script(|_, _| Reply::Text(vec!["the pump is fine".into()]));
    let received_before = cloud.count();
    std::thread::sleep(Duration::from_millis(300)); // the breaker's cooldown
    let report = drain(daemon.addr, Duration::from_secs(20));
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(stored_answer(&daemon, &id), "the pump is fine");
    let requests = cloud.requests.lock().unwrap();
    let replayed: Vec<&Request> = requests[received_before..]
        .iter()
        .filter(|r| nonce(r).as_deref() == Some("later please"))
        .collect();
    assert!(!replayed.is_empty());
    assert!(
        replayed
            .iter()
            .all(|r| r.idempotency_key.as_deref() == Some(id.as_str())),
        "the replay carries the entry id as Idempotency-Key"
    );
    drop(requests);
    let after = status(&daemon);
    assert_eq!(
        (after["queued"].as_u64(), after["delivered"].as_u64()),
        (Some(0), Some(1))
    );

    let metrics = daemon.get("/metrics").body;
    assert_eq!(metric(&metrics, "mcp_edge_queue_enqueued_total"), Some(1.0));
    assert_eq!(
        metric(&metrics, "mcp_edge_queue_delivered_total"),
        Some(1.0)
    );
    assert_eq!(metric(&metrics, "mcp_edge_queue_depth"), Some(0.0));
}

#[test]
fn requests_that_cannot_be_deferred_are_refused_clearly() {
    let cloud = CloudServer::start(|_, _| Reply::Status(503));
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&config(&cloud, &dir.path().join("q.sqlite"), ""));
    let local = post_json(
        daemon.addr,
        "/v1/chat/completions",
        &json!({ "messages": [{ "role": "user", "content": "x" }], "defer": true, "backend": "local" }),
    );
    assert_eq!(local.status, 400, "{}", local.body);
    let tools = post_json(
        daemon.addr,
        "/v1/mcp/completions",
        &json!({ "messages": [{ "role": "user", "content": "x" }], "defer": true, "tools": true }),
    );
    assert_eq!(tools.status, 400, "{}", tools.body);
    assert!(tools.body.contains("MCP tools"), "{}", tools.body);
    assert_eq!(daemon.get("/v1/queue/q-0123456789abcdef").status, 404);
    // A request the cloud refuses outright (4xx) is not deferred: it would never succeed.
    cloud.set_script(|_, _| Reply::Status(400));
    let refused = post_json(daemon.addr, "/v1/chat/completions", &deferred("bad"));
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert_eq!(refused.error_code(), "cloud_refused");
    assert_eq!(status(&daemon)["queued"], 0);
}

#[test]
fn overflow_rejects_or_drops_the_oldest_as_configured() {
    let cloud = CloudServer::start(|_, _| Reply::Status(503));
    let dir = tempfile::tempdir().unwrap();
    let reject = Daemon::start(&config(
        &cloud,
        &dir.path().join("reject.sqlite"),
        "queue_size = 2\noverflow = \"reject\"\n",
    ));
    for n in 0..2 {
        let r = post_json(
            reject.addr,
            "/v1/chat/completions",
            &deferred(&format!("r{n}")),
        );
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let full = post_json(reject.addr, "/v1/chat/completions", &deferred("r2"));
    assert_eq!(full.status, 429, "{}", full.body);
    assert_eq!(full.error_code(), "queue_full");
    assert_eq!(full.header("retry-after"), Some("1"));
    let metrics = reject.get("/metrics").body;
    assert_eq!(
        metric(&metrics, "mcp_edge_queue_rejected_total{reason=\"full\"}"),
        Some(1.0)
    );

    let drop = Daemon::start(&config(
        &cloud,
        &dir.path().join("drop.sqlite"),
        "queue_size = 2\noverflow = \"drop_oldest\"\n",
    ));
    let ids: Vec<String> = (0..3)
        .map(|n| {
            let r = post_json(
                drop.addr,
                "/v1/chat/completions",
                &deferred(&format!("d{n}")),
            );
            assert_eq!(r.status, 202, "{}", r.body);
            r.json()["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(drop.get(&format!("/v1/queue/{}", ids[0])).status, 404);
    assert_eq!(drop.get(&format!("/v1/queue/{}", ids[2])).status, 200);
    assert_eq!(status(&drop)["queued"], 2);
    let metrics = drop.get("/metrics").body;
    assert_eq!(metric(&metrics, "mcp_edge_queue_dropped_total"), Some(1.0));
}

/// The queue on a 512 KiB tmpfs of its own (a mount namespace, so nothing leaks if the test
/// dies), a fifth of it taken by a filler file the test removes later through
/// `/proc/<pid>/root`.
#[test]
fn a_full_disk_answers_507_keeps_what_was_acknowledged_and_recovers() {
    let cloud = CloudServer::start(|_, _| Reply::Status(503));
    let mount = tempfile::tempdir().unwrap();
    let queue = mount.path().join("queue.sqlite");
    let (dir, path) = config_file(&config(&cloud, &queue, ""));
    let probe = Command::new("unshare").arg("--version").output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "this test mounts a small tmpfs in a mount namespace with unshare(1): install util-linux"
    );
    let mut command = Command::new("unshare");
    command
        .args(["--map-root-user", "--mount", "sh", "-c"])
        .arg(
            "mount -t tmpfs -o size=512k tmpfs \"$0\" && head -c 110000 /dev/zero > \"$0/filler\" \
             && exec \"$@\"",
        )
        .arg(mount.path())
        .args([BIN, "serve", "--config"])
        .arg(&path)
        .env("STATE_DIRECTORY", dir.path());
    let daemon = Daemon::spawn(command, dir, path);

    // Letters from a generator: zstd cannot shrink them much, so the disk fills quickly.
    let mut rng = Lcg(7);
    let mut noise = || {
        (0..6_000)
            .map(|_| char::from(b'a' + rng.below(26) as u8))
            .collect::<String>()
    };
    let mut acknowledged = Vec::new();
    let refusal = loop {
        let r = post_json(daemon.addr, "/v1/chat/completions", &deferred(&noise()));
        match r.status {
            202 => acknowledged.push(r.json()["id"].as_str().unwrap().to_owned()),
            _ => break r,
        }
        assert!(acknowledged.len() < 500, "the tmpfs never filled up");
    };
    assert_eq!(refusal.status, 507, "{}", refusal.body);
    assert_eq!(refusal.error_code(), "insufficient_storage");
    assert!(refusal.body.contains("no space left"), "{}", refusal.body);
    assert!(
        acknowledged.len() >= 5,
        "only {} stored",
        acknowledged.len()
    );
    eprintln!(
        "{} entries acknowledged before the disk was full",
        acknowledged.len()
    );
    assert_eq!(
        daemon.get("/health").status,
        200,
        "the gateway keeps serving"
    );
    for id in &acknowledged {
        assert_eq!(
            daemon.get(&format!("/v1/queue/{id}")).json()["state"],
            "queued"
        );
    }
    let metrics = daemon.get("/metrics").body;
    assert!(
        metric(
            &metrics,
            "mcp_edge_queue_rejected_total{reason=\"disk_full\"}"
        ) >= Some(1.0),
        "{metrics}"
    );

    // Space comes back and the cloud with it: everything acknowledged is delivered.
    let filler = format!(
        "/proc/{}/root{}/filler",
        daemon.child.id(),
        mount.path().display()
    );
    std::fs::remove_file(&filler).unwrap();
    cloud.set_script(|r, _| {
        Reply::Text(vec![format!(
            "ok {}",
            r.idempotency_key.clone().unwrap_or_default()
        )])
    });
    std::thread::sleep(Duration::from_millis(300));
    drain(daemon.addr, Duration::from_secs(30));
    for id in &acknowledged {
        assert_eq!(stored_answer(&daemon, id), format!("ok {id}"));
    }
    let again = post_json(daemon.addr, "/v1/chat/completions", &deferred("after"));
    assert_eq!(
        again.status, 200,
        "the cloud answers live again: {}",
        again.body
    );
}

/// The endpoint fails in every way a flapping link does while the queue syncs: refused
/// (503), and answers lost after the request arrived. Every entry is delivered, each answer
/// stored is the one the endpoint gave for that entry's key, and no request reached the
/// endpoint under two keys.
#[test]
fn link_flapping_during_sync_loses_nothing_and_duplicates_nothing() {
    let cloud = CloudServer::start(|_, _| Reply::Status(503));
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&config(
        &cloud,
        &dir.path().join("q.sqlite"),
        "sync_strategy = \"batched\"\nsync_batch_size = 4\n",
    ));
    let ids: Vec<(String, String)> = (0..40)
        .map(|n| {
            let nonce = format!("flap {n}");
            let r = post_json(daemon.addr, "/v1/chat/completions", &deferred(&nonce));
            assert_eq!(r.status, 202, "{}", r.body);
            (nonce, r.json()["id"].as_str().unwrap().to_owned())
        })
        .collect();

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let hangups = Arc::new(AtomicU64::new(0));
    {
        let (ledger, hangups) = (Arc::clone(&ledger), Arc::clone(&hangups));
        let rng = Mutex::new(Lcg::from_clock());
        cloud.set_script(move |request, number| {
            let Some(key) = &request.idempotency_key else {
                return Reply::Status(400);
            };
            match rng.lock().unwrap().below(10) {
                0..=2 => Reply::Status(503),
                3..=4 => {
                    // Processed, but the answer never makes it back.
                    ledger.lock().unwrap().answer(key, number);
                    hangups.fetch_add(1, Ordering::Relaxed);
                    Reply::Hangup
                }
                _ => Reply::Text(vec![ledger.lock().unwrap().answer(key, number)]),
            }
        });
    }
    std::thread::sleep(Duration::from_millis(300));
    drain(daemon.addr, Duration::from_secs(90));

    let ledger = ledger.lock().unwrap();
    for (_, id) in &ids {
        assert_eq!(
            Some(&stored_answer(&daemon, id)),
            ledger.answers.get(id),
            "entry {id}: the stored answer is the endpoint's answer for its key"
        );
    }
    let keys_per_nonce = keys_per_nonce(&cloud);
    for (nonce, id) in &ids {
        assert_eq!(
            keys_per_nonce
                .get(nonce)
                .map(|k| k.iter().collect::<Vec<_>>()),
            Some(vec![id]),
            "{nonce} reached the endpoint under exactly its own key"
        );
    }
    eprintln!(
        "flapping: {} entries delivered, {} requests, {} answers lost in transit, {} replays absorbed by Idempotency-Key",
        ids.len(),
        cloud.count(),
        hangups.load(Ordering::Relaxed),
        ledger.replays
    );
    assert!(
        hangups.load(Ordering::Relaxed) > 0 && ledger.replays > 0,
        "the link did flap"
    );
}

/// What the clients of one crash round saw.
#[derive(Default)]
struct Seen {
    /// nonce → id of every 202.
    acknowledged: BTreeMap<String, String>,
    /// Nonces answered live (200).
    answered: BTreeSet<String>,
    /// Requests that got no answer (the gateway died under them).
    cut: u64,
}

/// Crash safety: load at the gateway, SIGKILL at a random moment, restart, many times, while
/// the endpoint goes up and down. Every request acknowledged with 202 must in the end be
/// delivered, its stored answer must be the endpoint's for its key, and no request may reach
/// the endpoint under two keys.
#[test]
fn every_acknowledged_request_survives_sigkill_and_is_delivered_exactly_once() {
    const ROUNDS: usize = 60;
    const CLIENTS: usize = 3;
    let up = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let cloud = {
        let (up, ledger) = (Arc::clone(&up), Arc::clone(&ledger));
        CloudServer::start(move |request, number| {
            if !up.load(Ordering::Relaxed) {
                return Reply::Status(503);
            }
            match &request.idempotency_key {
                Some(key) => Reply::Text(vec![ledger.lock().unwrap().answer(key, number)]),
                None => Reply::Text(vec!["live".into()]),
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let toml = config(
        &cloud,
        &dir.path().join("queue.sqlite"),
        "sync_strategy = \"batched\"\nsync_batch_size = 8\n",
    );
    let mut rng = Lcg::from_clock();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let keyed = |cloud: &CloudServer| {
        cloud
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.idempotency_key.is_some())
            .count()
    };
    // Rounds in which the gateway was replaying entries when it was killed (or had been).
    let mut rounds_with_sync = 0;
    for round in 0..ROUNDS {
        let replays_before = keyed(&cloud);
        up.store(rng.below(2) == 0, Ordering::Relaxed);
        let mut daemon = Daemon::start(&toml);
        let addr = daemon.addr;
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let nonce = format!("round {round} client {client} request {n}");
                        n += 1;
                        match try_post_json(addr, "/v1/chat/completions", &deferred(&nonce)) {
                            Ok(r) if r.status == 202 => {
                                let id = r.json()["id"].as_str().unwrap().to_owned();
                                seen.lock().unwrap().acknowledged.insert(nonce, id);
                            }
                            Ok(r) if r.status == 200 => {
                                seen.lock().unwrap().answered.insert(nonce);
                            }
                            Ok(r) => panic!("unexpected answer {}: {}", r.status, r.body),
                            Err(_) => {
                                seen.lock().unwrap().cut += 1;
                                return;
                            }
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100 + rng.below(900)));
        if rng.below(3) == 0 {
            up.store(!up.load(Ordering::Relaxed), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(rng.below(400)));
        }
        if keyed(&cloud) > replays_before {
            rounds_with_sync += 1;
        }
        daemon.signal(nix::sys::signal::Signal::SIGKILL);
        daemon.wait_exit(Duration::from_secs(10));
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.join().unwrap();
        }
    }

    up.store(true, Ordering::Relaxed);
    let daemon = Daemon::start(&toml);
    drain(daemon.addr, Duration::from_secs(180));
    let seen = seen.lock().unwrap();
    let ledger = ledger.lock().unwrap();
    for (nonce, id) in &seen.acknowledged {
        assert_eq!(
            Some(&stored_answer(&daemon, id)),
            ledger.answers.get(id),
            "{nonce} ({id}): acknowledged, so delivered, with the endpoint's answer for its key"
        );
    }
    let keys_per_nonce = keys_per_nonce(&cloud);
    for (nonce, keys) in &keys_per_nonce {
        assert_eq!(keys.len(), 1, "{nonce} reached the endpoint under {keys:?}");
        assert!(
            !seen.answered.contains(nonce),
            "{nonce} was answered live and delivered from the queue too"
        );
    }
    let unacknowledged = keys_per_nonce
        .keys()
        .filter(|n| !seen.acknowledged.contains_key(*n))
        .count();
    eprintln!(
        "crash safety: {ROUNDS} SIGKILL rounds ({rounds_with_sync} of them while replaying the queue), \
         {} acknowledged (202) and all delivered exactly once by key, {} answered live, \
         {} requests cut by the kill ({unacknowledged} of them stored and delivered anyway), \
         {} replays absorbed by Idempotency-Key",
        seen.acknowledged.len(),
        seen.answered.len(),
        seen.cut,
        ledger.replays
    );
    assert!(
        seen.acknowledged.len() >= ROUNDS,
        "too little load to prove anything"
    );
}

#[test]
fn a_damaged_queue_file_is_moved_aside_at_start_up() {
    let cloud = CloudServer::start(|_, _| Reply::Status(503));
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue.sqlite");
    std::fs::write(&queue, vec![0x5a; 16_384]).unwrap();
    let mut daemon = Daemon::start(&config(&cloud, &queue, ""));
    let line = daemon.wait_for_log("moved it aside", Duration::from_secs(5));
    assert!(line.contains("ERROR"), "{line}");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged file is kept for inspection");
    let r = post_json(daemon.addr, "/v1/chat/completions", &deferred("fresh"));
    assert_eq!(r.status, 202, "the fresh queue takes entries: {}", r.body);
}

#[test]
fn the_queue_answers_as_mcp_tools() {
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::ServiceExt;

    let cloud = CloudServer::start(|_, _| Reply::Status(503));
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&config(&cloud, &dir.path().join("q.sqlite"), ""));
    let accepted = post_json(daemon.addr, "/v1/chat/completions", &deferred("via mcp"));
    let id = accepted.json()["id"].as_str().unwrap().to_owned();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    runtime.block_on(async {
        let transport =
            StreamableHttpClientTransport::from_uri(format!("http://{}/mcp", daemon.addr));
        let client = ().serve(transport).await.unwrap();
        let tools = client.list_all_tools().await.unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        for tool in ["queue_status", "sync_offline_queue", "queue_entry"] {
            assert!(names.contains(&tool), "{tool} missing from {names:?}");
        }
        let call = |name: &'static str, arguments: Value| call_tool(&client, name, arguments);
        // The cloud is still down: the entry waits.
        assert_eq!(call("queue_status", json!({})).await["queued"], 1);
        cloud.set_script(|_, _| Reply::Text(vec!["answered".into()]));
        tokio::time::sleep(Duration::from_millis(300)).await; // the breaker's cooldown
                                                              // The sync loop may get there first; either way nothing remains.
        let report = call("sync_offline_queue", json!({})).await;
        assert_eq!(report["remaining"], 0, "{report}");
        let entry = call("queue_entry", json!({ "id": id })).await;
        assert_eq!(entry["state"], "delivered", "{entry}");
        assert_eq!(
            entry["result"]["choices"][0]["message"]["content"],
            "answered"
        );
        let unknown = client
            .call_tool(
                CallToolRequestParams::new("queue_entry")
                    .with_arguments(json!({ "id": "q-0" }).as_object().unwrap().clone()),
            )
            .await
            .unwrap();
        assert_eq!(unknown.is_error, Some(true), "{unknown:?}");
        client.cancel().await.unwrap();
    });
}

/// Calls an MCP tool that must succeed and returns its structured content.
async fn call_tool(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    name: &'static str,
    arguments: Value,
) -> Value {
    let mut params = rmcp::model::CallToolRequestParams::new(name);
    if let Value::Object(map) = arguments {
        params = params.with_arguments(map);
    }
    let result = client.call_tool(params).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{name}: {result:?}");
    result.structured_content.unwrap()
}

/// A second gateway is the remote (Streamable HTTP) upstream. While it is down, a call to one
/// of its tools is queued and the caller gets the entry's id; when it is back, the queue's
/// sync delivers the call and keeps the upstream's answer.
#[test]
fn a_call_to_an_unreachable_deferrable_upstream_is_queued_and_delivered_later() {
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::ServiceExt;

    let port = common::free_port();
    let back_toml = format!(
        "[gateway]\nbind_address = \"127.0.0.1:{port}\"\n{}",
        common::fixture_device_section()
    );
    let back = Daemon::start(&back_toml);
    let dir = tempfile::tempdir().unwrap();
    let front = Daemon::start(&format!(
        "[[upstreams]]\nname = \"back\"\nprefix = \"back\"\nurl = \"http://127.0.0.1:{port}/mcp\"\n\
         deferrable = true\n[offline]\npersistence_path = \"{}\"\nsync_interval_seconds = 1\n",
        dir.path().join("q.sqlite").display()
    ));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let transport =
            StreamableHttpClientTransport::from_uri(format!("http://{}/mcp", front.addr));
        let client = ().serve(transport).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !client
            .list_all_tools()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == "back_device_info")
        {
            assert!(Instant::now() < deadline, "the upstream never joined");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let call = |name: &'static str, arguments: Value| call_tool(&client, name, arguments);
        let live = call("back_device_info", json!({})).await;
        assert_eq!(live["hostname"], "edge-pi-07", "{live}");

        drop(back);
        let queued = call("back_device_info", json!({})).await;
        assert_eq!(queued["queued"], true, "{queued}");
        let id = queued["id"].as_str().unwrap().to_owned();
        assert_eq!(
            call("queue_entry", json!({ "id": id })).await["state"],
            "queued"
        );
        // Still down: a sync delivers nothing and keeps the call.
        let report = call("sync_offline_queue", json!({})).await;
        assert_eq!(report["remaining"], 1, "{report}");

        let _back = Daemon::start(&back_toml);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let report = call("sync_offline_queue", json!({})).await;
            if report["remaining"] == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "never delivered: {report}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let entry = call("queue_entry", json!({ "id": id })).await;
        assert_eq!(entry["state"], "delivered", "{entry}");
        assert_eq!(
            entry["result"]["structuredContent"]["hostname"], "edge-pi-07",
            "the upstream's answer is kept: {entry}"
        );
        client.cancel().await.unwrap();
    });
}
