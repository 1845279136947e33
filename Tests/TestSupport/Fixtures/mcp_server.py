"""An independent MCP server (fastmcp) for Switchboard's MCP client tests.

stdio by default; `http PORT` serves Streamable HTTP on 127.0.0.1:PORT with Server-Sent Events answers,
`http-json PORT` the same with plain JSON answers.
"""
import asyncio, os, signal, sys
os.environ.setdefault("FASTMCP_LOG_LEVEL", "CRITICAL")
if os.environ.get("IGNORE_SIGTERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
from fastmcp import FastMCP

mcp = FastMCP("python-tools")

@mcp.tool
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b

@mcp.tool
def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()

@mcp.tool
def get_departments() -> str:
    """Clashes with Switchboard's built-in tool of the same name."""
    return "python departments"

@mcp.tool
def crash() -> str:
    """Kills this server, to test reconnection."""
    os._exit(3)

@mcp.tool
def fail() -> str:
    """Always fails."""
    raise ValueError("the python tool failed on purpose")

@mcp.tool
def whisper(text: str) -> str:
    """Writes the text to standard error, a line per call."""
    print(text, file=sys.stderr, flush=True)
    return "whispered"

@mcp.tool
def environment() -> str:
    """The names of this process's environment variables, sorted, one per line."""
    return "\n".join(sorted(os.environ))

@mcp.tool
def traceparent() -> str:
    """The W3C traceparent header of the HTTP request that called this tool ("none" without one)."""
    from fastmcp.server.dependencies import get_http_headers
    return get_http_headers(include_all=True).get("traceparent", "none")

@mcp.tool
async def slow(seconds: float) -> str:
    """Sleeps, to test cancellation."""
    await asyncio.sleep(seconds)
    return "slept"

if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] in ("http", "http-json"):
        mcp.run(transport="http", host="127.0.0.1", port=int(sys.argv[2]),
                json_response=sys.argv[1] == "http-json", show_banner=False)
    else:
        mcp.run(show_banner=False)
