//! The power governor in the running gateway, on writable copies of the laptop and Raspberry
//! Pi fixture trees: the profile it chooses as the battery drains, AC comes back, the CPU heats
//! towards its trip point and the device idles, each switch logged with its reason and none
//! repeated while a reading wobbles; the exact cpufreq files it writes (itself, or
//! through the root helper `mcp-gateway cpufreq apply`); `GET/PUT /v1/power`, the MCP-visible
//! metrics, and who may set the profile.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{hash_token, metric, send, Daemon, Response, BIN};

fn sys(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn read(root: &Path, path: &str) -> String {
    std::fs::read_to_string(sys(root, path))
        .unwrap()
        .trim()
        .to_owned()
}

fn set(root: &Path, path: &str, value: &str) {
    std::fs::write(sys(root, path), value).unwrap();
}

fn power(daemon: &Daemon) -> serde_json::Value {
    let response = daemon.get("/v1/power");
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()
}

/// Polls `/v1/power` until `check` holds.
fn wait_for(
    daemon: &Daemon,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = power(daemon);
        if check(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "never {what}: {status:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `PUT auto`: runs a governor step at once on what the tree says now; returns its status.
fn step_now(daemon: &Daemon) -> serde_json::Value {
    let response = put(daemon, r#"{"profile": "auto"}"#, None);
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()
}

fn put(daemon: &Daemon, body: &str, token: Option<&str>) -> Response {
    let authorization = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    send(
        &mut daemon.connect(),
        &format!(
            "PUT /v1/power HTTP/1.1\r\nHost: localhost\r\n{authorization}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

const POLICIES: [&str; 4] = ["policy0", "policy1", "policy2", "policy3"];

fn cpufreq(policy: &str, file: &str) -> String {
    format!("/sys/devices/system/cpu/cpufreq/{policy}/{file}")
}

#[test]
fn a_laptop_drains_its_battery_reaches_critical_and_goes_back_on_mains() {
    let tree = common::writable_fixture("sysroot-laptop");
    let root = tree.path();
    let mut daemon = Daemon::start(&format!(
        "[device]\nsystem_root = \"{}\"\n[power]\npoll_interval_seconds = 1\ncpufreq = \"direct\"\n",
        root.display()
    ));

    // On battery at 64 %: balanced, and intel_pstate's powersave is already in force.
    daemon.wait_for_log(
        "power profile balanced: on battery at 64 %",
        Duration::from_secs(5),
    );
    let status = power(&daemon);
    assert_eq!(status["setting"], "auto");
    assert_eq!(status["profile"], "balanced");
    assert_eq!(status["on_external_power"], false);
    assert_eq!(status["battery_percent"], 64);
    assert_eq!(status["local_inference"], true);
    assert_eq!(status["cpufreq"]["policies"].as_array().unwrap().len(), 4);
    for policy in POLICIES {
        assert_eq!(
            read(root, &cpufreq(policy, "scaling_governor")),
            "powersave"
        );
        assert_eq!(read(root, &cpufreq(policy, "scaling_max_freq")), "4700000");
    }

    // 25 %: low-power caps every policy at half of 4.7 GHz.
    set(root, "/sys/class/power_supply/BAT0/capacity", "25");
    let status = wait_for(&daemon, "low-power at 25 %", |s| {
        s["profile"] == "low-power"
    });
    assert_eq!(status["reason"], "on battery at 25 %");
    assert_eq!(status["background_interval_factor"], 4);
    daemon.wait_for_log(
        "power profile low-power: on battery at 25 %",
        Duration::from_secs(5),
    );
    for policy in POLICIES {
        assert_eq!(
            read(root, &cpufreq(policy, "scaling_governor")),
            "powersave"
        );
        assert_eq!(read(root, &cpufreq(policy, "scaling_max_freq")), "2350000");
    }

    // Charging to 33 % is not enough to leave low-power: that needs 35 % (30 + 5).
    set(root, "/sys/class/power_supply/BAT0/capacity", "33");
    let stepped = step_now(&daemon);
    assert_eq!(
        (&stepped["profile"], &stepped["reason"]),
        (&"low-power".into(), &"on battery at 33 %".into())
    );

    // 8 %: no local inference; the metrics say so.
    set(root, "/sys/class/power_supply/BAT0/capacity", "8");
    let status = wait_for(&daemon, "local inference off", |s| {
        s["local_inference"] == false
    });
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("at or below the critical 10 %: local inference off"),
        "{status:#}"
    );
    let metrics = daemon.get("/metrics").body;
    assert_eq!(
        metric(&metrics, "mcp_edge_power_local_inference "),
        Some(0.0)
    );
    assert_eq!(
        metric(&metrics, "mcp_edge_battery_capacity_percent{name=\"BAT0\"}"),
        Some(8.0)
    );
    assert_eq!(
        metric(&metrics, "mcp_edge_power_profile{profile=\"low-power\"}"),
        Some(1.0)
    );

    // Mains again: performance, the performance governor and the full range.
    set(root, "/sys/class/power_supply/AC/online", "1");
    let status = wait_for(&daemon, "performance on mains", |s| {
        s["profile"] == "performance"
    });
    assert_eq!(status["reason"], "on external power");
    assert_eq!(status["local_inference"], true);
    for policy in POLICIES {
        assert_eq!(
            read(root, &cpufreq(policy, "scaling_governor")),
            "performance"
        );
        assert_eq!(read(root, &cpufreq(policy, "scaling_max_freq")), "4700000");
    }
    let metrics = daemon.get("/metrics").body;
    assert_eq!(
        metric(
            &metrics,
            "mcp_edge_power_profile_switches_total{profile=\"performance\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "mcp_edge_power_supply_online{name=\"AC\"}"),
        Some(1.0)
    );

    // Set by hand: it holds whatever the readings say, until set back to auto.
    let response = put(&daemon, r#"{"profile": "low-power"}"#, None);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json()["setting"], "low-power");
    assert_eq!(response.json()["profile"], "low-power");
    assert_eq!(
        read(root, &cpufreq("policy0", "scaling_max_freq")),
        "2350000"
    );
    let response = put(&daemon, r#"{"profile": "turbo"}"#, None);
    assert_eq!(response.status, 400);
    assert!(
        response
            .body
            .contains("unknown power profile \\\"turbo\\\""),
        "{}",
        response.body
    );
    assert_eq!(put(&daemon, "{not json", None).status, 400);
    let response = put(&daemon, r#"{"profile": "auto"}"#, None);
    assert_eq!(response.json()["profile"], "performance");
    assert!(
        daemon.problems_logged().is_empty(),
        "{:#?}",
        daemon.problems_logged()
    );
}

#[test]
fn an_idle_gateway_runs_low_power_and_the_next_request_wakes_it() {
    let tree = common::writable_fixture("sysroot-rpi4");
    let root = tree.path();
    let mut daemon = Daemon::start(&format!(
        "[device]\nsystem_root = \"{}\"\n[power]\nsleep_on_idle_ms = 600\ncpufreq = \"direct\"\n",
        root.display()
    ));
    // A Pi reports no supply: balanced, schedutil.
    daemon.wait_for_log(
        "power profile balanced: no power supply reported",
        Duration::from_secs(5),
    );
    assert_eq!(power(&daemon)["battery_percent"], serde_json::Value::Null);
    let governor = cpufreq("policy0", "scaling_governor");
    assert_eq!(read(root, &governor), "schedutil");

    // Reading /v1/power, /health or /metrics is not work: the gateway goes idle on time.
    let status = wait_for(&daemon, "idle", |s| s["idle"] == true);
    assert_eq!(status["profile"], "low-power");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("no request for ")
            && reason
                .contains("(power.sleep_on_idle_ms); otherwise balanced: no power supply reported"),
        "{status:#}"
    );
    assert_eq!(read(root, &governor), "conservative");
    assert_eq!(
        read(root, &cpufreq("policy0", "scaling_max_freq")),
        "900000"
    );

    // A request ends it at once, not a poll interval (30 s) later.
    assert_eq!(daemon.get("/v1/models").status, 200);
    let status = wait_for(&daemon, "awake", |s| s["idle"] == false);
    assert_eq!(status["profile"], "balanced");
    assert_eq!(read(root, &governor), "schedutil");
    assert_eq!(
        read(root, &cpufreq("policy0", "scaling_max_freq")),
        "1800000"
    );
}

#[test]
fn a_pi_heating_towards_its_trip_point_throttles_before_the_kernel_and_does_not_flap() {
    let tree = common::writable_fixture("sysroot-rpi4");
    let root = tree.path();
    let mut daemon = Daemon::start(&format!(
        "[device]\nsystem_root = \"{}\"\n[power]\ncpufreq = \"direct\"\n",
        root.display()
    ));
    daemon.wait_for_log(
        "power profile balanced: no power supply reported",
        Duration::from_secs(5),
    );
    // cpu-thermal's trip is at 110 °C: with thermal_margin = 15 the governor throttles from
    // 95 °C, and leaves low-power only 5 °C further (below 90 °C). Each temperature is written
    // to the tree, then a governor step runs at once.
    let governor = cpufreq("policy0", "scaling_governor");
    let max_freq = cpufreq("policy0", "scaling_max_freq");
    let at = |millidegrees: u32| {
        set(
            root,
            "/sys/class/thermal/thermal_zone0/temp",
            &millidegrees.to_string(),
        );
        let status = step_now(&daemon);
        (
            status["profile"].as_str().unwrap().to_owned(),
            read(root, &governor),
            read(root, &max_freq),
        )
    };
    let ramp = [
        70_000, 94_500, 95_500, 99_000, 91_000, 95_200, 90_500, 89_500, 94_500,
    ];
    let seen: Vec<(u32, (String, String, String))> = ramp.iter().map(|t| (*t, at(*t))).collect();
    let expect = |t: u32, profile: &str, governor: &str, max: &str| {
        (t, (profile.to_owned(), governor.to_owned(), max.to_owned()))
    };
    assert_eq!(
        seen,
        [
            expect(70_000, "balanced", "schedutil", "1800000"),
            expect(94_500, "balanced", "schedutil", "1800000"),
            expect(95_500, "low-power", "conservative", "900000"),
            expect(99_000, "low-power", "conservative", "900000"),
            expect(91_000, "low-power", "conservative", "900000"),
            expect(95_200, "low-power", "conservative", "900000"),
            expect(90_500, "low-power", "conservative", "900000"),
            expect(89_500, "balanced", "schedutil", "1800000"),
            expect(94_500, "balanced", "schedutil", "1800000"),
        ]
    );
    daemon.wait_for_log(
        "power profile low-power: 14.5 °C below a thermal trip point (margin 15 °C)",
        Duration::from_secs(5),
    );
    // One switch into low-power and one back, whatever the readings did in between.
    let metrics = daemon.get("/metrics").body;
    let switches = |profile: &str| {
        metric(
            &metrics,
            &format!("mcp_edge_power_profile_switches_total{{profile=\"{profile}\"}}"),
        )
    };
    assert_eq!(switches("low-power"), Some(1.0));
    assert_eq!(
        switches("balanced"),
        Some(2.0),
        "the start and the way back"
    );
    assert_eq!(
        metric(
            &metrics,
            "mcp_edge_thermal_zone_celsius{name=\"thermal_zone0\"}"
        ),
        Some(94.5)
    );
}

#[test]
fn without_the_right_to_write_cpufreq_the_helper_applies_the_request() {
    let tree = common::writable_fixture("sysroot-rpi4");
    let root = tree.path();
    let run = tempfile::tempdir().unwrap();
    let request = run.path().join("cpufreq-request");
    let mut daemon = Daemon::start(&format!(
        "[device]\nsystem_root = \"{}\"\n[power]\nprofile = \"low-power\"\ncpu_throttle_percent = 80\n\
         cpufreq = \"helper\"\ncpufreq_request = \"{}\"\n",
        root.display(),
        request.display()
    ));
    daemon.wait_for_log(
        "power profile low-power: the profile is set",
        Duration::from_secs(5),
    );
    // The gateway wrote its wish, and nothing under /sys.
    assert_eq!(std::fs::read_to_string(&request).unwrap(), "low-power 80\n");
    assert_eq!(
        read(root, &cpufreq("policy0", "scaling_governor")),
        "ondemand"
    );

    let apply = |request: &Path| {
        Command::new(BIN)
            .args(["cpufreq", "apply"])
            .arg(request)
            .arg("--system-root")
            .arg(root)
            .output()
            .unwrap()
    };
    let output = apply(&request);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout,
        "low-power at 80 %: 1 cpufreq policies, 2 writes\n\
         /sys/devices/system/cpu/cpufreq/policy0/scaling_governor = conservative\n\
         /sys/devices/system/cpu/cpufreq/policy0/scaling_max_freq = 900000\n"
    );
    assert_eq!(
        read(root, &cpufreq("policy0", "scaling_governor")),
        "conservative"
    );
    assert_eq!(
        read(root, &cpufreq("policy0", "scaling_max_freq")),
        "900000"
    );

    // The helper takes a profile and a number, nothing else.
    let forged = run.path().join("forged");
    std::fs::write(&forged, "/etc/shadow root\n").unwrap();
    let output = apply(&forged);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown profile"));
}

#[test]
fn reading_the_power_state_and_setting_the_profile_need_their_scopes() {
    let daemon = Daemon::start(&format!(
        "{}[[security.clients]]\nname = \"monitor\"\ntoken_sha256 = \"{}\"\nscopes = [\"power\"]\n\
         [[security.clients]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\nscopes = [\"admin\"]\n",
        common::fixture_device_section(),
        hash_token("monitor-token"),
        hash_token("ops-token"),
    ));
    let get = |token: Option<&str>| {
        let authorization =
            token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        send(
            &mut daemon.connect(),
            &format!("GET /v1/power HTTP/1.1\r\nHost: localhost\r\n{authorization}Connection: close\r\n\r\n"),
        )
    };
    assert_eq!(get(None).status, 401);
    assert_eq!(get(Some("stranger")).status, 401);
    assert_eq!(get(Some("monitor-token")).status, 200);
    let body = r#"{"profile": "performance"}"#;
    assert_eq!(put(&daemon, body, None).status, 401);
    assert_eq!(put(&daemon, body, Some("stranger")).status, 401);
    let refused = put(&daemon, body, Some("monitor-token"));
    assert_eq!(refused.status, 403);
    assert_eq!(refused.error_code(), "insufficient_scope");
    let set = put(&daemon, body, Some("ops-token"));
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.json()["setting"], "performance");
}

#[test]
fn the_governor_reports_the_load_and_how_busy_the_cpus_were_between_two_readings() {
    let tree = common::writable_fixture("sysroot-rpi4");
    let root = tree.path();
    let mut daemon = Daemon::start(&format!("[device]\nsystem_root = \"{}\"\n", root.display()));
    daemon.wait_for_log("power profile balanced", Duration::from_secs(5));
    let cpu = &power(&daemon)["cpu"];
    assert_eq!(
        cpu["load_average"],
        serde_json::json!({"one": 0.52, "five": 0.34, "fifteen": 0.2})
    );
    // The first reading covers the time since boot: busy 81158 of 3467980 ticks.
    let since_boot = cpu["busy_percent"].as_f64().unwrap();
    assert!((since_boot - 2.3402).abs() < 0.0001, "{cpu:#}");

    // 400 busy ticks (user 300, system 100) of 1000 (idle 550, iowait 50) later:
    let stat = read(root, "/proc/stat");
    let later = stat.replacen(
        "cpu  58391 212 21473 3384521 2301 0 1082",
        "cpu  58691 212 21573 3385071 2351 0 1082",
        1,
    );
    assert_ne!(later, stat);
    set(root, "/proc/stat", &later);
    assert_eq!(step_now(&daemon)["cpu"]["busy_percent"], 40.0);
    let metrics = daemon.get("/metrics").body;
    assert_eq!(metric(&metrics, "mcp_edge_cpu_busy_percent "), Some(40.0));
}
