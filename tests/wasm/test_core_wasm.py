"""The portable core built for wasm32-wasip1 (docs/WASM.md), run under the wasmtime runtime from
PyPI and driven over stdio by the official MCP Python SDK's client and by raw JSON-RPC lines.

scripts/test.sh builds the module (scripts/build-wasm.sh) and names it in MCP_EDGE_CORE_WASM.
"""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

RUNNER = Path(__file__).with_name("run_core.py")
# The budget for the WASM core.
MAX_MODULE_BYTES = 3_000_000


@pytest.fixture(scope="session")
def module():
    path = os.environ.get("MCP_EDGE_CORE_WASM")
    if not path or not Path(path).is_file():
        pytest.fail(
            "MCP_EDGE_CORE_WASM does not name the built module: run `bash scripts/build-wasm.sh` "
            "and set MCP_EDGE_CORE_WASM to the path it prints (scripts/test.sh does both)"
        )
    return path


def test_the_module_is_within_its_size_budget(module):
    size = Path(module).stat().st_size
    assert 0 < size <= MAX_MODULE_BYTES, f"{size} bytes"


async def converse(module, mode):
    server = StdioServerParameters(command=sys.executable, args=[str(RUNNER), module])
    async with Client(server, mode=mode, raise_exceptions=True) as client:
        tools = await client.list_tools()
        def local_first(pending):
            return client.call_tool(
                "route_request",
                {
                    "routing": "local_first",
                    "fallback_threshold_ms": 500,
                    "local": {"pending": pending, "max_queued": 2, "estimated_first_token_ms": 100},
                    "cloud": {"available": True},
                },
            )

        busy = await local_first(3)
        fast = await local_first(0)
        nothing = await client.call_tool("route_request", {"routing": "local_first", "fallback_threshold_ms": 1})
        payload = {"messages": [{"role": "user", "content": "status? " * 40}], "n": 1}
        stored = await client.call_tool("queue_encode", {"payload": payload})
        decoded = await client.call_tool(
            "queue_decode",
            {"codec": "lz4", "stored_base64": stored.structured_content["stored_base64"]},
        )
        zstd = await client.call_tool("queue_decode", {"codec": "zstd", "stored_base64": ""})
        bad = await client.call_tool("route_request", {"routing": "sometimes", "fallback_threshold_ms": 1})
        return {
            "protocol_version": client.protocol_version,
            "server": client.server_info.name if client.server_info else None,
            "tools": sorted(t.name for t in tools.tools),
            "busy": busy.structured_content,
            "fast": fast.structured_content,
            "nothing": (nothing.is_error, nothing.content[0].text),
            "payload": payload,
            "stored": stored.structured_content,
            "decoded": decoded.structured_content,
            "zstd": (zstd.is_error, zstd.content[0].text),
            "bad": (bad.is_error, bad.content[0].text),
        }


@pytest.mark.parametrize(
    "mode, revision",
    [("legacy", "2025-11-25"), ("auto", "2026-07-28")],
    ids=["initialize-2025-11-25", "discover-2026-07-28"],
)
def test_the_official_sdk_client_initializes_lists_and_calls_tools(module, mode, revision):
    seen = anyio.run(converse, module, mode)
    assert seen["protocol_version"] == revision
    assert seen["server"] == "mcp-edge-core"
    assert seen["tools"] == ["queue_decode", "queue_encode", "route_request"]
    # The gateway's routing policy, decided inside the WASM module.
    assert seen["busy"]["backend"] == "cloud", seen["busy"]
    assert "busy (3 requests ahead)" in seen["busy"]["reason"]
    assert seen["busy"]["fallback"] == {"to": "local", "first_token_deadline_ms": None}
    assert seen["fast"]["backend"] == "local", seen["fast"]
    assert seen["fast"]["fallback"] == {"to": "cloud", "first_token_deadline_ms": 500}
    assert seen["nothing"][0] and "models.model_path or models.cloud_endpoint" in seen["nothing"][1]
    # The queue codec: lz4 shrinks the repetitive payload and gives it back unchanged.
    assert seen["stored"]["codec"] == "lz4"
    assert seen["stored"]["stored_bytes"] < seen["stored"]["raw_bytes"] / 4, seen["stored"]
    assert seen["decoded"]["payload"] == seen["payload"]
    assert seen["zstd"][0] and "zstd C library" in seen["zstd"][1]
    assert seen["bad"][0] and "invalid arguments" in seen["bad"][1]


def exchange(module, lines):
    """Sends raw lines to the module on stdin; returns its answers, one per request."""
    done = subprocess.run(
        [sys.executable, str(RUNNER), module],
        input="".join(line + "\n" for line in lines).encode(),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


def test_bad_input_gets_json_rpc_errors_and_loses_nothing(module):
    initialize = {"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {"protocolVersion": "2025-11-25"}}
    answers = exchange(
        module,
        [
            json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            "{not json",
            "x" * (1024 * 1024 + 10),
            json.dumps(initialize),
            json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            json.dumps({"jsonrpc": "2.0", "id": 2, "method": "resources/list"}),
            json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "reboot"}}),
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 4,
                    "method": "tools/list",
                    "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01"}},
                }
            ),
            json.dumps([{"jsonrpc": "2.0", "id": 5, "method": "ping"}]),
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 6,
                    "method": "tools/call",
                    "params": {
                        "name": "queue_decode",
                        "arguments": {"codec": "lz4", "stored_base64": base64.b64encode(b"\xff\xff\xff\x7f").decode()},
                    },
                }
            ),
            json.dumps({"jsonrpc": "2.0", "id": 7, "method": "ping"}),
        ],
    )
    codes = [a.get("error", {}).get("code") for a in answers]
    # One answer per request, in order; the notification gets none.
    assert codes == [-32600, -32700, -32600, None, -32601, -32602, -32022, -32600, None, None], answers
    assert "send initialize first" in answers[0]["error"]["message"]
    assert "over 1048576 bytes" in answers[2]["error"]["message"]
    assert answers[3]["result"]["protocolVersion"] == "2025-11-25"
    assert "reboot" in answers[5]["error"]["message"]
    assert answers[6]["error"]["data"]["supported"][:2] == ["2026-07-28", "2025-11-25"]
    assert answers[7]["id"] is None
    assert answers[8]["result"]["isError"] and "do not decode as lz4" in answers[8]["result"]["content"][0]["text"]
    assert answers[9] == {"jsonrpc": "2.0", "id": 7, "result": {}}
