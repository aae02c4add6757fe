"""Drives alertgraph's MCP server with the official Python SDK, the way an agent would.

Called by tests/it/mcp.rs with one JSON argument:
  {"mode": "http", "url": ..., "key": ..., "read_only_key": ..., "indicator": {...}}
  {"mode": "stdio", "command": ..., "env": {...}, "indicator": {...}}
Prints one JSON object with what each step returned; the Rust test checks it.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


def outcome(result):
    """A tool result as plain JSON: error flag, text, structured content."""
    return {
        "is_error": bool(result.is_error),
        "text": "\n".join(block.text for block in result.content if getattr(block, "text", None)),
        "structured": result.structured_content,
    }


async def session(client, config):
    out = {}
    tools = await client.list_tools()
    out["tools"] = [
        {
            "name": tool.name,
            "description": tool.description,
            "input_schema": tool.input_schema,
            "read_only": tool.annotations.read_only_hint if tool.annotations else None,
            "destructive": tool.annotations.destructive_hint if tool.annotations else None,
        }
        for tool in tools.tools
    ]
    search = await client.call_tool("search_alerts", {"filter": {"source": ["sentinel"]}, "first": 5})
    out["search_alerts"] = outcome(search)
    alert_id = search.structured_content["alerts"]["nodes"][0]["id"]
    out["get_alert"] = outcome(await client.call_tool("get_alert", {"id": alert_id}))
    out["enrich_indicator"] = outcome(await client.call_tool("enrich_indicator", config["indicator"]))
    out["get_indicator_raw"] = outcome(
        await client.call_tool("get_indicator", {**config["indicator"], "includeRaw": True})
    )
    out["add_finding"] = outcome(
        await client.call_tool(
            "add_finding",
            {
                "alertId": alert_id,
                "agentName": "python-sdk",
                "summary": "Password spraying from a TOR exit node",
                "confidence": 0.9,
                "evidence": {"source": "mcp"},
            },
        )
    )
    out["unknown_argument"] = outcome(await client.call_tool("get_alert", {"id": alert_id, "bogus": 1}))
    templates = await client.list_resource_templates()
    out["resource_templates"] = [t.uri_template for t in templates.resource_templates]
    resource = await client.read_resource(f"alertgraph://alerts/{alert_id}")
    out["alert_resource"] = json.loads(resource.contents[0].text)
    value = config["indicator"]["value"]
    resource = await client.read_resource(f"alertgraph://indicators/{config['indicator']['type'].lower()}/{value}")
    out["indicator_resource"] = json.loads(resource.contents[0].text)
    return out


async def main():
    config = json.loads(sys.argv[1])
    if config["mode"] == "http":
        def client_for(key):
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
            return Client(streamable_http_client(config["url"], http_client=http))

        async with client_for(config["key"]) as client:
            out = await session(client, config)
        async with client_for(config["read_only_key"]) as client:
            alert_id = out["search_alerts"]["structured"]["alerts"]["nodes"][0]["id"]
            out["forbidden"] = outcome(
                await client.call_tool("add_finding", {"alertId": alert_id, "agentName": "x", "summary": "y"})
            )
    else:
        params = StdioServerParameters(command=config["command"], args=config.get("args", []), env=config["env"])
        async with Client(params) as client:
            out = await session(client, config)
    print(json.dumps(out))


asyncio.run(main())
