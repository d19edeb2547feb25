"""Last, because it ends the session's VM: a clean power-off."""

import time


def test_clean_power_off(vm):
    vm.qmp("system_powerdown")
    deadline = time.monotonic() + 90
    while vm.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert vm.process.poll() is not None, "the guest did not power off within 90 s"
    assert "reboot: Power down" in vm.serial.read_text(errors="replace")
