//! Hybrid execution over real sockets: the reference model (SmolLM2-135M-Instruct Q4_1) running
//! in the gateway, an OpenAI-compatible cloud endpoint on loopback (scripted, see
//! `common/cloud.rs`), the router between them, and tool calls through the MCP layer.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common;
use crate::common::cloud::{CloudServer, Reply};
use crate::common::{post_json, sse_events, test_tools, Daemon};

const CHAT: &str = "/v1/chat/completions";

/// `[models]` with the reference model and `extra` keys. One thread per gateway: the tests of
/// this file run side by side on a small machine, and candle's worker threads spin while they
/// wait for each other, which oversubscribed cores punish hard.
fn local_model(extra: &str) -> String {
    format!(
        "[gateway]\nrequest_timeout_ms = 120000\n[models]\nmodel_path = \"{}\"\nthreads = 1\n{extra}\n",
        test_tools().model.display()
    )
}

fn ask(question: &str) -> Value {
    json!([
        { "role": "system", "content": "You are a helpful assistant." },
        { "role": "user", "content": question }
    ])
}

fn content(response: &Value) -> String {
    response["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content: {response}"))
        .to_owned()
}

/// The text of an OpenAI stream, and its last chunk.
fn streamed_text(body: &str) -> (String, Value) {
    let mut text = String::new();
    let mut last = Value::Null;
    for (_, data) in sse_events(body) {
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(&data).unwrap();
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            text.push_str(piece);
        }
        if !chunk["choices"][0]["finish_reason"].is_null() {
            last = chunk;
        }
    }
    (text, last)
}

#[test]
fn the_local_model_answers_sensibly_and_a_seed_repeats_the_answer() {
    let daemon = Daemon::start(&local_model(""));
    // Pure greedy decoding. With the default repetition penalty over the prompt's words the
    // reference model's second token is a near tie that rounding decides: candle and the
    // kernels' portable code answer "The capital of France is Paris.", the AVX2 kernel
    // "The answer to this classic French question requires some creative thinking...".
    let greedy = json!({
        "messages": ask("What is the capital of France? Answer in one word."),
        "temperature": 0, "repetition_penalty": 1.0, "max_tokens": 24
    });
    let response = post_json(daemon.addr, CHAT, &greedy);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("x-mcp-edge-backend"), Some("local"));
    let json = response.json();
    let answer = content(&json);
    assert!(answer.contains("Paris"), "{answer}");
    assert_eq!(json["mcp_edge"]["backend"], "local");
    assert!(
        json["mcp_edge"]["reason"]
            .as_str()
            .unwrap()
            .contains("local model"),
        "{json}"
    );
    assert_eq!(json["model"], "SmolLM2-135M-Instruct.Q4_1");
    assert!(
        json["usage"]["prompt_tokens"].as_u64().unwrap() > 10,
        "{json}"
    );

    let sampled = json!({
        "messages": ask("Tell me about the moon."),
        "temperature": 0.8, "seed": 7, "max_tokens": 30
    });
    let first = content(&post_json(daemon.addr, CHAT, &sampled).json());
    let second = content(&post_json(daemon.addr, CHAT, &sampled).json());
    assert_eq!(first, second, "the same seed must give the same answer");
    assert!(first.to_lowercase().contains("moon"), "{first}");
    let other_seed = json!({
        "messages": ask("Tell me about the moon."),
        "temperature": 0.8, "seed": 8, "max_tokens": 30
    });
    let third = content(&post_json(daemon.addr, CHAT, &other_seed).json());
    assert_ne!(first, third, "another seed should sample another answer");
}

#[test]
fn streaming_delivers_the_same_text_as_a_whole_answer() {
    let daemon = Daemon::start(&local_model(""));
    let request = |stream: bool| {
        json!({
            "messages": ask("Name three colors."),
            "temperature": 0.7, "seed": 3, "max_tokens": 40, "stream": stream,
            "stream_options": { "include_usage": true }
        })
    };
    let whole = post_json(daemon.addr, CHAT, &request(false)).json();
    let response = post_json(daemon.addr, CHAT, &request(true));
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    assert_eq!(response.header("x-mcp-edge-backend"), Some("local"));
    let events = sse_events(&response.body);
    assert!(
        events.len() > 5,
        "tokens arrive one by one: {}",
        response.body
    );
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let (text, last) = streamed_text(&response.body);
    assert_eq!(text, content(&whole));
    assert_eq!(
        last["choices"][0]["finish_reason"],
        whole["choices"][0]["finish_reason"]
    );
    assert_eq!(last["mcp_edge"]["backend"], "local");
    let usage: Value = serde_json::from_str(&events[events.len() - 2].1).unwrap();
    assert_eq!(
        usage["usage"], whole["usage"],
        "include_usage sends the counts"
    );
}

#[test]
fn max_tokens_and_stop_sequences_end_the_answer() {
    let daemon = Daemon::start(&local_model(""));
    let base =
        json!({ "messages": ask("Tell me about the moon."), "temperature": 0, "max_tokens": 5 });
    let short = post_json(daemon.addr, CHAT, &base).json();
    assert_eq!(short["usage"]["completion_tokens"], 5);
    assert_eq!(short["choices"][0]["finish_reason"], "length");

    let long =
        json!({ "messages": ask("Tell me about the moon."), "temperature": 0, "max_tokens": 40 });
    let full = content(&post_json(daemon.addr, CHAT, &long).json());
    // Stop at the second word of the greedy answer: the answer must be exactly what precedes it.
    let word = full.split_whitespace().nth(3).unwrap().to_owned();
    let cut = full.find(&word).unwrap();
    let mut stopped = long.clone();
    stopped["stop"] = json!([word, "never appears: zq"]);
    let json = post_json(daemon.addr, CHAT, &stopped).json();
    assert_eq!(content(&json), full[..cut], "stop {word:?} in {full:?}");
    assert_eq!(json["choices"][0]["finish_reason"], "stop");

    stopped["stream"] = json!(true);
    let (text, last) = streamed_text(&post_json(daemon.addr, CHAT, &stopped).body);
    assert_eq!(
        text,
        full[..cut],
        "streamed text holds back a possible stop sequence"
    );
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
}

#[test]
fn the_next_turn_of_a_conversation_reuses_the_cached_prompt() {
    let mut daemon = Daemon::start(&local_model(""));
    // The model keeps one prompt in its cache; the start-up warm-up must not run between the
    // two turns and take it.
    daemon.wait_for_log("local model warmed up", Duration::from_secs(60));
    let mut messages = ask("Name three colors.").as_array().unwrap().clone();
    let first = post_json(
        daemon.addr,
        CHAT,
        &json!({ "messages": messages, "temperature": 0, "max_tokens": 30 }),
    )
    .json();
    messages.push(json!({ "role": "assistant", "content": content(&first) }));
    messages.push(json!({ "role": "user", "content": "And three animals?" }));
    let second = post_json(
        daemon.addr,
        CHAT,
        &json!({ "messages": messages, "temperature": 0, "max_tokens": 20 }),
    )
    .json();
    let cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0);
    let prompt = second["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(
        cached >= first["usage"]["prompt_tokens"].as_u64().unwrap(),
        "the first turn's prompt should be cached: {second}"
    );
    assert!(cached < prompt, "{second}");
    assert!(!content(&second).is_empty());
}

#[test]
fn a_model_larger_than_max_memory_mb_is_refused_at_start() {
    let (_dir, path) = common::config_file(&local_model("max_memory_mb = 64"));
    let output = Command::new(common::BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(78),
        "configuration-class failure"
    );
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("needs about"), "{log}");
    assert!(log.contains("models.max_memory_mb is 64"), "{log}");
    assert!(
        log.contains("KV cache"),
        "says where the memory goes: {log}"
    );
}

#[test]
fn a_full_queue_is_refused_with_retry_after_when_nothing_else_can_answer() {
    let mut daemon = Daemon::start(&local_model("max_queued = 1"));
    daemon.wait_for_log("local model warmed up", Duration::from_secs(30));
    let addr = daemon.addr;
    let long = json!({ "messages": ask("Write a long story about a robot."), "temperature": 0, "max_tokens": 60 });
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let long = long.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(150 * i));
                post_json(addr, CHAT, &long)
            })
        })
        .collect();
    let responses: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    let refused = responses.iter().find(|r| r.status == 429).unwrap();
    assert_eq!(refused.error_code(), "model_busy");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1, "{retry}");
}

#[test]
fn without_a_local_model_the_cloud_answers() {
    let cloud =
        CloudServer::start(|_, _| Reply::Text(vec!["Hello ".into(), "from the cloud.".into()]));
    let daemon = Daemon::start(&format!(
        "[models]\ncloud_endpoint = \"{}\"\ncloud_api_key = \"sk-test-secret\"\ncloud_model = \"big-model\"\n",
        cloud.endpoint()
    ));
    let response = post_json(
        daemon.addr,
        CHAT,
        &json!({ "messages": ask("Hi"), "max_tokens": 50 }),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("x-mcp-edge-backend"), Some("cloud"));
    let json = response.json();
    assert_eq!(content(&json), "Hello from the cloud.");
    assert_eq!(json["usage"]["total_tokens"], 18);
    assert!(
        json["mcp_edge"]["reason"]
            .as_str()
            .unwrap()
            .contains("no local model"),
        "{json}"
    );
    let sent = cloud.requests.lock().unwrap()[0].clone();
    assert_eq!(sent.authorization.as_deref(), Some("Bearer sk-test-secret"));
    let sent = sent.body;
    assert_eq!(sent["model"], "big-model");
    assert_eq!(sent["messages"][1]["content"], "Hi");
    assert_eq!(sent["max_tokens"], 50);
    assert!(
        !daemon.logs().iter().any(|l| l.contains("sk-test-secret")),
        "the API key never reaches the log"
    );
    let metrics = daemon.get("/metrics").body;
    let answered = r#"mcp_edge_completions_total{backend="cloud",outcome="stop"}"#;
    assert_eq!(common::metric(&metrics, answered), Some(1.0), "{metrics}");
    let tokens = r#"mcp_edge_completion_tokens_total{backend="cloud",kind="completion"}"#;
    assert_eq!(common::metric(&metrics, tokens), Some(7.0), "{metrics}");
}

#[test]
fn a_cloud_that_refuses_the_key_is_a_clear_error_and_not_retried() {
    let cloud = CloudServer::start(|request, _| {
        if request.authorization.as_deref() == Some("Bearer right-key") {
            Reply::Text(vec!["welcome".into()])
        } else {
            Reply::Status(401)
        }
    });
    let config = |key: &str| {
        format!(
            "[models]\ncloud_endpoint = \"{}\"\ncloud_api_key = \"{key}\"\n",
            cloud.endpoint()
        )
    };
    let stranger = Daemon::start(&config("wrong-key"));
    let response = post_json(stranger.addr, CHAT, &json!({ "messages": ask("Hi") }));
    assert_eq!(response.status, 503, "{}", response.body);
    let message = response.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("answered 401"), "{message}");
    assert!(!message.contains("wrong-key"), "{message}");
    assert_eq!(cloud.count(), 1, "a refused key is not retried");
    let member = Daemon::start(&config("right-key"));
    let response = post_json(member.addr, CHAT, &json!({ "messages": ask("Hi") }));
    assert_eq!(content(&response.json()), "welcome");
}

#[test]
fn a_local_model_that_is_too_slow_hands_over_to_the_cloud_within_the_threshold() {
    let cloud = CloudServer::start(|_, _| Reply::Text(vec!["cloud answer".into()]));
    let mut daemon = Daemon::start(&local_model(&format!(
        "fallback_threshold_ms = 3000\ncloud_endpoint = \"{}\"\n",
        cloud.endpoint()
    )));
    daemon.wait_for_log("local model warmed up", Duration::from_secs(30));
    let addr = daemon.addr;
    // Occupy the model with a long local answer...
    let busy = std::thread::spawn(move || {
        post_json(
            addr,
            CHAT,
            &json!({ "messages": ask("Write a long story about a robot."), "temperature": 0,
                     "max_tokens": 300, "backend": "local" }),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    // ...so this short one, routed locally by the estimate, waits in the queue past the
    // threshold and is handed to the cloud.
    let started = Instant::now();
    let response = post_json(
        addr,
        CHAT,
        &json!({ "messages": ask("Hi"), "max_tokens": 20 }),
    );
    let elapsed = started.elapsed();
    assert_eq!(response.status, 200, "{}", response.body);
    let json = response.json();
    assert_eq!(json["mcp_edge"]["backend"], "cloud", "{json}");
    let reason = json["mcp_edge"]["reason"].as_str().unwrap();
    assert!(reason.contains("no first token within 3000 ms"), "{reason}");
    assert!(reason.contains("fell back to cloud"), "{reason}");
    assert_eq!(content(&json), "cloud answer");
    assert!(
        elapsed < Duration::from_millis(3000 + 1000),
        "the cloud took over at the threshold: {elapsed:?}"
    );
    let metrics = daemon.get("/metrics").body;
    let fallbacks = r#"mcp_edge_completion_fallbacks_total{to="cloud"}"#;
    assert_eq!(common::metric(&metrics, fallbacks), Some(1.0), "{metrics}");
    let local = busy.join().unwrap();
    assert_eq!(local.status, 200, "{}", local.body);
    let local = local.json();
    assert_eq!(
        local["mcp_edge"]["backend"], "local",
        "the long answer finished locally"
    );

    // A prompt whose estimated prefill alone is over the threshold goes to the cloud at once.
    let mut daemon = Daemon::start(&local_model(&format!(
        "fallback_threshold_ms = 5\ncloud_endpoint = \"{}\"\n",
        cloud.endpoint()
    )));
    daemon.wait_for_log("local model warmed up", Duration::from_secs(30));
    let json = post_json(
        daemon.addr,
        CHAT,
        &json!({ "messages": ask("Write a long story."), "max_tokens": 20 }),
    )
    .json();
    assert_eq!(json["mcp_edge"]["backend"], "cloud", "{json}");
    let reason = json["mcp_edge"]["reason"].as_str().unwrap();
    assert!(reason.contains("would need about"), "{reason}");
}

#[test]
fn when_the_cloud_is_down_the_local_model_answers_or_the_error_is_clear() {
    let cloud = CloudServer::start(|_, _| Reply::Status(503));
    let daemon = Daemon::start(&local_model(&format!(
        "routing = \"cloud_first\"\ncloud_endpoint = \"{}\"\ncloud_retries = 1\n",
        cloud.endpoint()
    )));
    let json = post_json(
        daemon.addr,
        CHAT,
        &json!({ "messages": ask("Name three colors."), "max_tokens": 10 }),
    )
    .json();
    assert_eq!(json["mcp_edge"]["backend"], "local", "{json}");
    let reason = json["mcp_edge"]["reason"].as_str().unwrap();
    assert!(reason.contains("cloud failed"), "{reason}");
    assert!(reason.contains("503"), "{reason}");
    assert!(reason.contains("fell back to local"), "{reason}");
    assert_eq!(cloud.count(), 2, "one retry for 503");

    // Without a local model: a clear 503, also for a link that is simply gone.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = unused.local_addr().unwrap();
    drop(unused);
    let daemon = Daemon::start(&format!(
        "[models]\ncloud_endpoint = \"http://{gone}/v1\"\ncloud_retries = 0\n"
    ));
    let response = post_json(daemon.addr, CHAT, &json!({ "messages": ask("Hi") }));
    assert_eq!(response.status, 503, "{}", response.body);
    assert_eq!(response.error_code(), "no_model_available");
    let message = response.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("cannot reach the cloud endpoint"),
        "{message}"
    );
}

#[test]
fn the_circuit_breaker_opens_after_repeated_failures_and_closes_after_a_good_probe() {
    let cloud = CloudServer::start(|_, _| Reply::Status(500));
    let daemon = Daemon::start(&format!(
        "[models]\ncloud_endpoint = \"{}\"\ncloud_retries = 2\ncircuit_breaker_failures = 2\ncircuit_breaker_cooldown_ms = 1500\n",
        cloud.endpoint()
    ));
    let request = json!({ "messages": ask("Hi") });
    for _ in 0..2 {
        let response = post_json(daemon.addr, CHAT, &request);
        assert_eq!(response.status, 503, "{}", response.body);
    }
    assert_eq!(
        cloud.count(),
        2,
        "500 is not retried (the request may have been processed)"
    );
    let models = daemon.get("/v1/models").json();
    assert_eq!(models["data"][0]["mcp_edge"]["circuit"], "open", "{models}");

    let started = Instant::now();
    let response = post_json(daemon.addr, CHAT, &request);
    assert_eq!(response.status, 503);
    let message = response.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("failed repeatedly"), "{message}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "fails fast while open"
    );
    assert_eq!(
        cloud.count(),
        2,
        "nothing is sent while the circuit is open"
    );

    cloud.set_script(|_, _| Reply::Text(vec!["back".into()]));
    std::thread::sleep(Duration::from_millis(1600));
    let response = post_json(daemon.addr, CHAT, &request);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(content(&response.json()), "back");
    assert_eq!(
        daemon.get("/v1/models").json()["data"][0]["mcp_edge"]["circuit"],
        "closed"
    );

    // Failures worth repeating are retried with backoff before they count.
    cloud.set_script(|_, n| {
        if n < 5 {
            Reply::Status(503)
        } else {
            Reply::Text(vec!["third time".into()])
        }
    });
    let response = post_json(daemon.addr, CHAT, &request);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(content(&response.json()), "third time");
    assert_eq!(cloud.count(), 6);
}

#[test]
fn a_tool_call_from_the_model_runs_a_real_mcp_tool_and_its_result_goes_back() {
    let cloud = CloudServer::start(|request, _| {
        let messages = request.body["messages"].as_array().unwrap();
        match messages.iter().find(|m| m["role"] == "tool") {
            None => Reply::ToolCall {
                name: "device_info".into(),
                arguments: json!({}),
            },
            Some(result) => {
                let info: Value =
                    serde_json::from_str(result["content"].as_str().unwrap()).unwrap();
                Reply::Text(vec![format!(
                    "This device is a {}.",
                    info["model"].as_str().unwrap()
                )])
            }
        }
    });
    let daemon = Daemon::start(&format!(
        "{}[models]\ncloud_endpoint = \"{}\"\n",
        common::fixture_device_section(),
        cloud.endpoint()
    ));
    let response = post_json(
        daemon.addr,
        "/v1/mcp/completions",
        &json!({ "messages": ask("What hardware is this?"), "tools": ["device_info"] }),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    let json = response.json();
    assert_eq!(
        json["message"]["content"], "This device is a Raspberry Pi 4 Model B Rev 1.4.",
        "{json}"
    );
    assert_eq!(json["finish_reason"], "stop");
    assert_eq!(json["tool_rounds"], 1);
    let run = &json["tool_runs"][0];
    assert_eq!(run["name"], "device_info");
    assert_eq!(run["is_error"], false);
    assert!(
        run["result"].as_str().unwrap().contains("Raspberry Pi 4"),
        "{run}"
    );
    assert_eq!(
        json["mcp_edge"]["routes"].as_array().unwrap().len(),
        2,
        "two turns"
    );

    let requests = cloud.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let offered = &requests[0].body["tools"];
    assert_eq!(
        offered.as_array().unwrap().len(),
        1,
        "only the tool asked for: {offered}"
    );
    assert_eq!(offered[0]["function"]["name"], "device_info");
    assert!(offered[0]["function"]["parameters"].is_object());
    let second = requests[1].body["messages"].as_array().unwrap();
    assert_eq!(second[2]["tool_calls"][0]["id"], "call_cloud_0");
    assert_eq!(second[3]["role"], "tool");
    assert_eq!(second[3]["tool_call_id"], "call_cloud_0");

    // Streamed, the same round trip arrives as route, tool and text events.
    let response = post_json(
        daemon.addr,
        "/v1/mcp/completions",
        &json!({ "messages": ask("What hardware is this?"), "tools": true, "stream": true }),
    );
    let names: Vec<String> = sse_events(&response.body)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        ["route", "tool", "route", "text", "done"],
        "{}",
        response.body
    );
}

#[test]
fn bad_completion_requests_get_clear_errors() {
    let daemon = Daemon::start("");
    let cases = [
        (json!({ "messages": [] }), "at least one message"),
        (json!({ "messages": "hi" }), "messages"),
        (
            json!({ "messages": ask("hi"), "temperature": 5 }),
            "temperature",
        ),
        (json!({ "messages": ask("hi"), "n": 2 }), "n must be 1"),
        (
            json!({ "messages": [{ "role": "user", "content": [{ "type": "image_url" }] }] }),
            "image_url",
        ),
    ];
    for (body, expected) in cases {
        let response = post_json(daemon.addr, CHAT, &body);
        assert_eq!(response.status, 400, "{body}: {}", response.body);
        assert_eq!(response.error_code(), "invalid_request");
        let message = response.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains(expected), "{body}: {message}");
    }
    let response = common::send(
        &mut daemon.connect(),
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n{nope",
    );
    assert_eq!(response.status, 400);
    assert!(
        response.body.contains("not valid JSON"),
        "{}",
        response.body
    );
    // Neither a local model nor a cloud: 503 that says what to configure.
    let response = post_json(daemon.addr, CHAT, &json!({ "messages": ask("hi") }));
    assert_eq!(response.status, 503);
    assert!(
        response
            .body
            .contains("models.model_path or models.cloud_endpoint"),
        "{}",
        response.body
    );
    let response = daemon.get("/v1/chat/completions");
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("POST"));
    assert_eq!(daemon.get("/v1/models").json()["data"], json!([]));
}

/// CPUs without the kernels' AVX2 code (aarch64 among them) run the model on candle, the Q4_1
/// weights converted to Q8_0 at load; `MCP_EDGE_KERNEL=candle` takes that path on any CPU.
#[test]
fn without_the_kernels_the_model_runs_on_candle_converted_to_q8_0() {
    let mut daemon = Daemon::start_with(&local_model(""), |command| {
        command.env("MCP_EDGE_KERNEL", "candle");
    });
    let line = daemon.wait_for_log("running the model on candle", Duration::from_secs(30));
    assert!(line.contains("MCP_EDGE_KERNEL=candle"), "{line}");
    let health = daemon.get("/health").json();
    assert_eq!(
        health["subsystems"]["models"]["detail"],
        "local model SmolLM2-135M-Instruct.Q4_1 (q4_1, run as q8_0); no cloud endpoint"
    );
    let greedy = json!({
        "messages": ask("What is the capital of France? Answer in one word."),
        "temperature": 0, "max_tokens": 24
    });
    let response = post_json(daemon.addr, CHAT, &greedy);
    assert_eq!(response.status, 200, "{}", response.body);
    let answer = content(&response.json());
    assert!(answer.contains("Paris"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_clients_reach_the_local_model_through_generate_and_a_prompt() {
    use rmcp::model::{CallToolRequestParams, GetPromptRequestParams};
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::ServiceExt;

    let mut daemon = Daemon::start(&local_model(""));
    daemon.wait_for_log("local model warmed up", Duration::from_secs(30));
    let health = daemon.get("/health").json();
    let detail = health["subsystems"]["models"]["detail"].as_str().unwrap();
    assert_eq!(
        detail,
        "local model SmolLM2-135M-Instruct.Q4_1 (q4_1); no cloud endpoint"
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let transport = StreamableHttpClientTransport::from_uri(format!("http://{}/mcp", daemon.addr));
    let client = ().serve(transport).await.unwrap();

    let tools = client.list_all_tools().await.unwrap();
    let generate = tools
        .iter()
        .find(|t| t.name == "generate")
        .expect("generate is listed");
    assert!(generate
        .description
        .as_deref()
        .unwrap()
        .contains("SmolLM2-135M-Instruct.Q4_1"));
    let arguments = json!({ "prompt": "What is the capital of France? Answer in one word.",
                            "temperature": 0, "max_tokens": 24 });
    let call = || {
        CallToolRequestParams::new("generate")
            .with_arguments(arguments.as_object().unwrap().clone())
    };
    let first = client.call_tool(call()).await.unwrap();
    assert_eq!(first.is_error, Some(false));
    let structured = first.structured_content.clone().unwrap();
    assert!(
        structured["text"].as_str().unwrap().contains("Paris"),
        "{structured}"
    );
    assert!(structured["completion_tokens"].as_u64().unwrap() <= 24);
    let second = client.call_tool(call()).await.unwrap();
    assert_eq!(
        second.structured_content, first.structured_content,
        "greedy is deterministic"
    );

    let bad = client
        .call_tool(
            CallToolRequestParams::new("generate").with_arguments(
                json!({ "prompt": "hi", "max_tokens": 0 })
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        bad.is_error,
        Some(true),
        "bad arguments are a tool error the model can read"
    );

    let prompt = client
        .get_prompt(
            GetPromptRequestParams::new("ask_local_model").with_arguments(
                json!({ "question": "Name three colors." })
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        prompt.messages.len(),
        2,
        "the question and the model's answer"
    );
    client.cancel().await.unwrap();
}

/// Writes the reference model as a Hugging Face checkpoint (f32 safetensors, `config.json`,
/// `tokenizer.json`): no safetensors llama can be downloaded here, so the test makes one from
/// the GGUF file. GGUF stores the query and key projections permuted for interleaved rotary
/// embeddings; Hugging Face's layout is the other one, so they are permuted back.
fn write_checkpoint(gguf: &std::path::Path, dir: &std::path::Path) {
    use candle_core::quantized::gguf_file;
    use candle_core::{Device, Tensor};

    let mut file = std::fs::File::open(gguf).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let number = |key: &str| content.metadata[key].to_u32().unwrap() as usize;
    let (heads, kv_heads, layers) = (
        number("llama.attention.head_count"),
        number("llama.attention.head_count_kv"),
        number("llama.block_count"),
    );
    let mut tensor = |name: &str| -> Tensor {
        content
            .tensor(&mut file, name, &Device::Cpu)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap()
    };
    let unpermute = |w: Tensor, heads: usize| -> Tensor {
        let (rows, cols) = w.dims2().unwrap();
        w.reshape((heads, rows / heads / 2, 2, cols))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((rows, cols))
            .unwrap()
    };
    let mut weights = std::collections::HashMap::new();
    weights.insert(
        "model.embed_tokens.weight".to_owned(),
        tensor("token_embd.weight"),
    );
    weights.insert("model.norm.weight".to_owned(), tensor("output_norm.weight"));
    for i in 0..layers {
        let gguf = |part: &str| format!("blk.{i}.{part}.weight");
        let hf = |part: &str| format!("model.layers.{i}.{part}.weight");
        let q = unpermute(tensor(&gguf("attn_q")), heads);
        let k = unpermute(tensor(&gguf("attn_k")), kv_heads);
        weights.insert(hf("self_attn.q_proj"), q);
        weights.insert(hf("self_attn.k_proj"), k);
        for (from, to) in [
            ("attn_v", "self_attn.v_proj"),
            ("attn_output", "self_attn.o_proj"),
            ("ffn_gate", "mlp.gate_proj"),
            ("ffn_up", "mlp.up_proj"),
            ("ffn_down", "mlp.down_proj"),
            ("attn_norm", "input_layernorm"),
            ("ffn_norm", "post_attention_layernorm"),
        ] {
            weights.insert(hf(to), tensor(&gguf(from)));
        }
    }
    candle_core::safetensors::save(&weights, dir.join("model.safetensors")).unwrap();
    let config = json!({
        "hidden_size": number("llama.embedding_length"),
        "intermediate_size": number("llama.feed_forward_length"),
        "vocab_size": 49152,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": true,
        "bos_token_id": 1,
        "eos_token_id": 2,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let tokenizer = mcp_edge_gateway::inference::tokenizer_from_gguf(&content).unwrap();
    tokenizer.save(dir.join("tokenizer.json"), false).unwrap();
}

#[test]
fn a_safetensors_checkpoint_answers_like_the_gguf_file() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(&test_tools().model, dir.path());
    let daemon = Daemon::start(&format!(
        "[gateway]\nrequest_timeout_ms = 120000\n[models]\nmodel_path = \"{}\"\nlocal_model = \"smollm2-f32\"\nmax_memory_mb = 2048\nthreads = 1\n",
        dir.path().display()
    ));
    let models = daemon.get("/v1/models").json();
    assert_eq!(models["data"][0]["id"], "smollm2-f32");
    assert_eq!(models["data"][0]["mcp_edge"]["quantization"], "f32");
    assert_eq!(models["data"][0]["mcp_edge"]["tokenizer"], "tokenizer.json");
    let json = post_json(
        daemon.addr,
        CHAT,
        &json!({ "messages": ask("What is the capital of France? Answer in one word."),
                 "temperature": 0, "max_tokens": 24 }),
    )
    .json();
    assert_eq!(json["mcp_edge"]["backend"], "local");
    let answer = content(&json);
    assert!(answer.contains("Paris"), "{answer}");
}
