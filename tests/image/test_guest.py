"""Inside the booted image, through the QEMU guest agent: the measured boot, and the gateway's
sandbox and watchdog as systemd runs them."""

import re
import time

from conftest import guest_exec


def test_firmware_and_loader_measured_the_boot_into_the_tpm(vm):
    code, out = guest_exec(vm, ["/usr/bin/tpm2_pcrread", "sha256:0,1,2,3,4,5,6,7"])
    assert code == 0, out
    values = dict(re.findall(r"^\s+(\d+)\s*:\s*0x([0-9A-F]+)", out, re.M))
    assert sorted(values, key=int) == [str(i) for i in range(8)], out
    for pcr, value in values.items():
        assert set(value) != {"0"}, f"PCR {pcr} is all zero:\n{out}"


def test_no_unit_failed_in_the_pruned_image(vm):
    # What build-image.sh leaves out (docs/IMAGE.md: udev's hardware database, most of glibc's
    # converters, apt, kernel modules) must not be something a unit of the booted image needs.
    code, out = guest_exec(vm, ["/usr/bin/systemctl", "list-units", "--failed", "--plain", "--no-legend"])
    assert code == 0 and out.strip() == "", f"failed units:\n{out}"
    left_out = "/usr/bin/apt-get /usr/lib/udev/hwdb.bin /usr/lib/modules/*/kernel/fs/smb/client/cifs.ko"
    code, out = guest_exec(vm, ["/bin/sh", "-c", f'for f in {left_out}; do [ ! -e "$f" ] || echo "$f"; done'])
    assert code == 0 and out.strip() == "", f"in the image after all:\n{out}"


def test_the_gateway_runs_unprivileged_in_its_sandbox(vm):
    code, out = guest_exec(vm, ["/usr/bin/systemd-analyze", "security", "--no-pager", "mcp-gateway.service"])
    line = next(l for l in out.splitlines() if "Overall exposure level" in l)
    score = float(line.split(":")[1].split()[0])
    print(f"\nin the booted image: {line.strip()}")
    assert score <= 2.0, out

    code, pid = guest_exec(vm, ["/usr/bin/systemctl", "show", "-P", "MainPID", "mcp-gateway.service"])
    pid = pid.strip()
    assert code == 0 and pid not in ("", "0"), pid
    code, status = guest_exec(vm, ["/usr/bin/cat", f"/proc/{pid}/status"])
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    uid = fields["Uid"].split()[0]
    assert uid != "0", "the gateway runs as root"
    for capability in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[capability].strip(), 16) == 0, f"{capability} = {fields[capability]}"
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"
    # systemd's filter and the gateway's own.
    assert int(fields["Seccomp_filters"].strip()) >= 2, fields["Seccomp_filters"]

    # The gateway's own sandbox, checked by the gateway at start: a file outside its paths and a
    # system call outside its list are refused.
    _, journal = guest_exec(vm, ["/usr/bin/journalctl", "-u", "mcp-gateway.service", "--no-pager", "-q",
                                 "--grep", "sandbox in force"])
    line = journal.strip().splitlines()[-1] if journal.strip() else ""
    print(f"in the booted image: {line}")
    # Debian 12's kernel has Landlock ABI 2, so the ABI 3 rules are partially enforced.
    assert re.search(r"Landlock (fully|partially) enforced", line) and "listing / denied" in line, journal
    assert "sched_setaffinity denied" in line, journal


def test_a_hung_gateway_is_restarted_by_the_watchdog(vm):
    _, before = guest_exec(vm, ["/usr/bin/systemctl", "show", "-P", "MainPID", "mcp-gateway.service"])
    before = before.strip()
    # SIGSTOP freezes every thread: no watchdog ping arrives, and WatchdogSec=30 expires.
    code, out = guest_exec(
        vm, ["/usr/bin/systemctl", "kill", "--signal=SIGSTOP", "--kill-whom=main", "mcp-gateway.service"]
    )
    assert code == 0, out
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _, now = guest_exec(vm, ["/usr/bin/systemctl", "show", "-P", "MainPID", "mcp-gateway.service"])
        if now.strip() not in ("", "0", before):
            break
        time.sleep(2)
    else:
        raise AssertionError("systemd did not restart the frozen gateway within 120 s")
    status, health = vm.get("/health", timeout=10)
    assert status == 200 and health["status"] == "ready"
    _, journal = guest_exec(vm, ["/usr/bin/journalctl", "-u", "mcp-gateway.service", "--no-pager", "-q"])
    assert "Watchdog timeout" in journal, journal[-2000:]


def test_the_power_governor_runs_and_reports_no_battery(vm):
    status, power = vm.get("/v1/power", timeout=30)
    assert status == 200, power
    print(f"in the booted image: /v1/power profile {power['profile']}: {power['reason']}; "
          f"{len(power['cpufreq']['policies'])} cpufreq policies; "
          f"{len(power['thermal_zones'])} thermal zones")
    # A VM has no battery and reports no supply: balanced, the local model allowed.
    assert power["setting"] == "auto", power
    assert power["battery_percent"] is None and power["on_external_power"] is None, power
    assert power["supplies"] == [], power
    assert (power["profile"], power["reason"]) == ("balanced", "no power supply reported"), power
    assert power["local_inference"] is True, power
    assert power["cpufreq"]["control"] == "helper" and power["cpufreq"]["error"] is None, power
    # /proc is readable inside the sandbox: the load and the busy share since boot.
    cpu = power["cpu"]
    assert cpu["load_average"] is not None and 0 <= cpu["busy_percent"] <= 100, power
    print(f"in the booted image: load {cpu['load_average']['one']}, CPUs {cpu['busy_percent']:.1f} % busy")
    # The unit lets the kernel coalesce the gateway's timer wake-ups with others'.
    _, pid = guest_exec(vm, ["/usr/bin/systemctl", "show", "-P", "MainPID", "mcp-gateway.service"])
    code, slack = guest_exec(vm, ["/usr/bin/cat", f"/proc/{pid.strip()}/timerslack_ns"])
    assert code == 0 and slack.strip() == "50000000", slack

    _, journal = guest_exec(vm, ["/usr/bin/journalctl", "-u", "mcp-gateway.service", "--no-pager", "-q",
                                 "--grep", "power profile"])
    assert "power profile balanced: no power supply reported" in journal, journal

    # The request reached the root helper through the path unit, and the helper did its part.
    code, request = guest_exec(vm, ["/usr/bin/cat", "/run/mcp-edge/cpufreq-request"])
    assert code == 0 and request == "balanced 100\n", request
    _, result = guest_exec(vm, ["/usr/bin/systemctl", "show", "-P", "Result", "mcp-gateway-cpufreq.service"])
    _, helper = guest_exec(vm, ["/usr/bin/journalctl", "-u", "mcp-gateway-cpufreq.service", "--no-pager", "-q"])
    print(f"in the booted image: cpufreq helper: {result.strip()}: {helper.strip().splitlines()[-1:]}")
    assert result.strip() == "success", helper
    assert "balanced" in helper, helper
