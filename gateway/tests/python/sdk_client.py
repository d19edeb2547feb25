"""Drives the gateway with the official MCP Python SDK and prints what it saw as one JSON object.

    python sdk_client.py http://127.0.0.1:PORT/mcp [--mode auto|legacy|2026-07-28]
    python sdk_client.py --stdio /path/to/mcp-gateway --config FILE

The Rust test that runs it asserts on the JSON; this script only reports.
"""

import argparse
import asyncio
import json

from mcp import Client, StdioServerParameters


async def exercise(server, mode):
    async with Client(server, mode=mode, raise_exceptions=True) as client:
        tools = await client.list_tools()
        info = await client.call_tool("device_info", {})
        sensors = await client.call_tool("device_sensors", {"source": "thermal"})
        bad = await client.call_tool("device_sensors", {"source": "nonsense"})
        resource = await client.read_resource("device://info")
        prompts = await client.list_prompts()
        prompt = await client.get_prompt("diagnose_device", {"symptom": "overheating"})
        return {
            "protocol_version": client.protocol_version,
            "server": client.server_info.name if client.server_info else None,
            "tools": [t.name for t in tools.tools],
            "device_info": info.structured_content,
            "device_info_is_error": bool(info.is_error),
            "thermal": sensors.structured_content,
            "bad_arguments_is_error": bool(bad.is_error),
            "bad_arguments_text": bad.content[0].text if bad.content else None,
            "resource_mime": resource.contents[0].mime_type,
            "resource": json.loads(resource.contents[0].text),
            "prompts": [p.name for p in prompts.prompts],
            "prompt_text": prompt.messages[0].content.text,
        }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url", nargs="?")
    parser.add_argument("--mode", default="auto")
    parser.add_argument("--stdio")
    parser.add_argument("--config")
    args = parser.parse_args()
    if args.stdio:
        server = StdioServerParameters(command=args.stdio, args=["stdio", "--config", args.config])
    else:
        server = args.url
    print(json.dumps(asyncio.run(exercise(server, args.mode))))


if __name__ == "__main__":
    main()
