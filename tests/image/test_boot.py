"""The reference image booted whole in QEMU (UEFI, systemd-boot, swtpm), tested from the host."""

import asyncio
import subprocess


from conftest import ARCH, IMAGE_NAME, PI_CARD_NAME, REPO, sha256_file


def test_gateway_reports_ready(vm):
    status, health = vm.get("/health")
    assert status == 200
    assert health["status"] == "ready"
    assert health["subsystems"]["http"]["ready"] is True
    # Socket activation: systemd owns the port, the gateway serves on the inherited socket.
    assert "8080" in health["subsystems"]["http"]["detail"]


def test_mcp_tools_through_the_port_forward(vm):
    from mcp import Client

    async def exercise():
        async with Client(vm.url + "/mcp", mode="legacy", raise_exceptions=True) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            info = await client.call_tool("device_info", {})
            return tools, info.structured_content

    tools, info = asyncio.run(exercise())
    assert {"device_info", "device_sensors", "network_links"} <= set(tools)
    assert info["hostname"] == "mcp-edge"
    assert info["kernel"].endswith(f"-cloud-{ARCH}"), info["kernel"]
    assert info["os"].startswith("Debian GNU/Linux 12")
    assert info["disk"]["path"] == "/var/lib/mcp-edge"


def test_a_second_build_is_bit_identical(image, tmp_path, request):
    first = sha256_file(image)
    subprocess.run(["bash", str(REPO / "qemu" / "build-image.sh"), str(tmp_path)], check=True)
    second = sha256_file(tmp_path / IMAGE_NAME)
    assert first == second, "two builds from the same inputs differ; compare them with diffoscope"
    if ARCH == "arm64":
        first_card = sha256_file(request.getfixturevalue("card"))
        subprocess.run(["bash", str(REPO / "qemu" / "build-pi-card.sh"), str(tmp_path)], check=True)
        assert sha256_file(tmp_path / PI_CARD_NAME) == first_card, "the two builds' Pi cards differ"
