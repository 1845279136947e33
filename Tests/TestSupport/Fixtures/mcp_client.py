"""An independent MCP client (fastmcp) that drives `switchboard mcp` over stdio and prints what it saw as JSON."""
import asyncio, json, sys
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

async def main(binary):
    transport = StdioTransport(command=binary, args=["mcp", "--database", ":memory:"])
    async with Client(transport) as client:
        tools = await client.list_tools()
        ok = await client.call_tool("get_departments", {}, raise_on_error=False)
        bad = await client.call_tool("get_employees", {"limit": "ten"}, raise_on_error=False)
        seed = await client.call_tool("get_employees", {"min_increment_pct": 5, "max_increment_pct": 10, "limit": 3},
                                      raise_on_error=False)
        text = lambda result: "".join(part.text for part in result.content if hasattr(part, "text"))
        print(json.dumps({
            "tools": sorted(tool.name for tool in tools),
            "schemas": {tool.name: (getattr(tool, "input_schema", None) or tool.inputSchema) for tool in tools},
            "departments": json.loads(text(ok)),
            "departmentsError": ok.is_error,
            "badError": bad.is_error,
            "badText": text(bad),
            "seed": json.loads(text(seed)),
        }))

asyncio.run(main(sys.argv[1]))
