//! Telemetry export over real sockets: a collector on loopback that is down, then up; the
//! snapshots taken during the outage arrive after it, decoded with the gateway's own decoder;
//! with a small `memory.telemetry_buffer_kb` the oldest make room for the newest.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_edge_gateway::telemetry::export::{decode, Batch, CONTENT_TYPE};

use crate::common::Daemon;

/// Bodies the collector accepted, with their `Content-Encoding`.
type Accepted = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A collector: answers 503 while `up` is false, else 204, and keeps what it accepted.
struct Collector {
    url: String,
    up: Arc<AtomicBool>,
    refused: Arc<Mutex<usize>>,
    accepted: Accepted,
}

impl Collector {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/ingest", listener.local_addr().unwrap());
        let up = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(Mutex::new(0));
        let accepted: Accepted = Arc::default();
        let (u, r, a) = (Arc::clone(&up), Arc::clone(&refused), Arc::clone(&accepted));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut length, mut encoding, mut content_type) =
                    (0, String::new(), String::new());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end().to_owned();
                    if line.is_empty() {
                        break;
                    }
                    let (k, v) = line.split_once(':').unwrap();
                    match k.to_ascii_lowercase().as_str() {
                        "content-length" => length = v.trim().parse().unwrap(),
                        "content-encoding" => encoding = v.trim().to_owned(),
                        "content-type" => content_type = v.trim().to_owned(),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                assert_eq!(content_type, CONTENT_TYPE);
                let status = if u.load(Ordering::SeqCst) {
                    a.lock().unwrap().push((encoding, body));
                    "204 No Content"
                } else {
                    *r.lock().unwrap() += 1;
                    "503 Service Unavailable"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Self {
            url,
            up,
            refused,
            accepted,
        }
    }

    fn batches(&self) -> Vec<(String, usize, Batch)> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .map(|(encoding, body)| {
                (
                    encoding.clone(),
                    body.len(),
                    decode(encoding, body).unwrap(),
                )
            })
            .collect()
    }
}

#[test]
fn snapshots_taken_during_an_outage_arrive_after_it() {
    let collector = Collector::start();
    let daemon = Daemon::start(&format!(
        "[telemetry]\nexport_interval_seconds = 1\ncompression = \"zstd\"\nendpoints = [\"{}\"]\n",
        collector.url
    ));
    // Down for a while: the gateway keeps its snapshots and backs off.
    let deadline = Instant::now() + Duration::from_secs(10);
    while *collector.refused.lock().unwrap() < 2 {
        assert!(
            Instant::now() < deadline,
            "the gateway never tried the collector"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    collector.up.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    while collector.batches().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "nothing arrived after the outage"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let batches = collector.batches();
    let (encoding, compressed, first) = &batches[0];
    assert_eq!(encoding, "zstd");
    let seqs: Vec<u64> = batches
        .iter()
        .flat_map(|(_, _, b)| b.snapshots.iter().map(|s| s.seq))
        .collect();
    assert!(
        first.snapshots.len() >= 3,
        "the outage's snapshots came in one batch: {seqs:?}"
    );
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "none lost, none twice"
    );
    assert_eq!(first.dropped, 0);
    assert_eq!(first.format, "mcp-edge-telemetry/1");
    for snapshot in &first.snapshots {
        assert!(
            snapshot.openmetrics.contains("mcp_edge_build_info"),
            "{}",
            snapshot.openmetrics
        );
        assert!(snapshot.openmetrics.ends_with("# EOF\n"));
    }
    let raw = serde_json::to_vec(first).unwrap().len();
    assert!(
        raw > 5 * compressed,
        "zstd: {raw} bytes of JSON sent as {compressed}"
    );
    let failures = daemon
        .logs()
        .iter()
        .filter(|l| l.contains("telemetry export failed"))
        .count();
    assert!(failures >= 2, "each failed attempt is logged");
}

#[test]
fn the_telemetry_buffer_keeps_the_newest_snapshots_within_its_budget() {
    let collector = Collector::start();
    let daemon = Daemon::start(&format!(
        "[telemetry]\nexport_interval_seconds = 1\nendpoints = [\"{}\"]\n[memory]\ntelemetry_buffer_kb = {}\n",
        collector.url,
        BUDGET / 1024
    ));
    // Down long enough for more snapshots than the budget holds.
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let stats = daemon.get("/v1/memory").json();
        let buffer = &stats["telemetry_buffer"];
        assert_eq!(buffer["limit_bytes"], BUDGET);
        assert!(buffer["used_bytes"].as_u64().unwrap() <= BUDGET, "{stats}");
        let refused = buffer["refused"].as_u64().unwrap();
        if refused >= 2 {
            break refused;
        }
        assert!(
            Instant::now() < deadline,
            "the budget never filled: {stats}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    collector.up.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    while collector.batches().is_empty() {
        assert!(
            Instant::now() < deadline,
            "nothing arrived after the outage"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, _, first) = &collector.batches()[0];
    assert!(
        first.dropped >= refused,
        "{} dropped, {refused} refused",
        first.dropped
    );
    let seqs: Vec<u64> = first.snapshots.iter().map(|s| s.seq).collect();
    assert!(!seqs.is_empty());
    assert_eq!(
        seqs,
        (seqs[0]..seqs[0] + seqs.len() as u64).collect::<Vec<_>>(),
        "the newest snapshots, in order"
    );
    assert_eq!(seqs[0], first.dropped + 1, "the oldest ones made room");
    let held: usize = first.snapshots.iter().map(|s| s.openmetrics.len()).sum();
    assert!(
        held as u64 <= BUDGET,
        "{held} bytes of snapshots in a {BUDGET}-byte budget"
    );
}

const BUDGET: u64 = 16 * 1024;
