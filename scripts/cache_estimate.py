#!/usr/bin/env python3
"""What prompt caching saves on a three-iteration tool chat (method and figures: Docs/BENCHMARKS.md).

Runs the release server against a local upstream that speaks Anthropic's streaming format and keeps every request
body: the model asks for get_departments, then for get_employees (5-10 % increments), then answers. The server
runs the shipped HR tools on its seeded SQLite database, so the tool results are the real ones. For each of the
three requests the script splits the input into the parts the breakpoints mark (tools, system, the conversation up
to the previous call's breakpoint, the rest), estimates tokens as bytes / 4 (Anthropic counts about 4 bytes of
English or JSON per token; no tokenizer is available offline), and prices the chat at list prices with and without
breakpoints, honouring the model's minimum cacheable length. Run twice by the script: prompt caching on (the
default) and off (`prompt_cache: false` on a provider in a rules file).
"""
import argparse, asyncio, json, os, subprocess, tempfile, time

from bench_requests import wait_listening   # the scripts' directory is on the path when one runs

SCRIPT = [
    [("tool", "toolu_1", "get_departments", {})],
    [("tool", "toolu_2", "get_employees", {"min_increment_pct": 5, "max_increment_pct": 10})],
    [("text", "Engineering has the most people; six employees got 5-10 %.")],
]
# Claude Sonnet 4.5's list prices, USD per million tokens, and its minimum cacheable prefix.
PRICES = {"input": 3.00, "cache_write": 3.75, "cache_read": 0.30, "output": 15.00}
MINIMUM = 1024
OUTPUT_TOKENS = 60   # each call's output, the same either way


def events(turn):
    out = [("message_start", {"type": "message_start", "message": {"id": "msg", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 1}}})]
    stop = "end_turn"
    for index, piece in enumerate(turn):
        if piece[0] == "tool":
            _, tid, name, arguments = piece
            out += [("content_block_start", {"type": "content_block_start", "index": index,
                     "content_block": {"type": "tool_use", "id": tid, "name": name, "input": {}}}),
                    ("content_block_delta", {"type": "content_block_delta", "index": index,
                     "delta": {"type": "input_json_delta", "partial_json": json.dumps(arguments)}}),
                    ("content_block_stop", {"type": "content_block_stop", "index": index})]
            stop = "tool_use"
        else:
            out += [("content_block_start", {"type": "content_block_start", "index": index,
                     "content_block": {"type": "text", "text": ""}}),
                    ("content_block_delta", {"type": "content_block_delta", "index": index,
                     "delta": {"type": "text_delta", "text": piece[1]}}),
                    ("content_block_stop", {"type": "content_block_stop", "index": index})]
    out += [("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
             "usage": {"output_tokens": OUTPUT_TOKENS}}), ("message_stop", {"type": "message_stop"})]
    return b"".join(b"event: %s\ndata: %s\n\n" % (name.encode(), json.dumps(data).encode()) for name, data in out)


class Upstream:
    def __init__(self):
        self.bodies = []

    async def handle(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
        self.bodies.append(json.loads(await reader.readexactly(length)))
        body = events(SCRIPT[(len(self.bodies) - 1) % len(SCRIPT)])
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()


def tokens(value):
    return (len(json.dumps(value, separators=(",", ":")).encode()) + 3) // 4


def marked(block):
    return isinstance(block, dict) and "cache_control" in block


def price(bodies):
    """Input tokens at full price, written to and read from the cache, over the chat's calls."""
    full = write = read = 0
    cached_prefix = 0   # tokens of the longest prefix a previous call wrote
    for body in bodies:
        tools = [{k: v for k, v in t.items() if k != "cache_control"} for t in body.get("tools", [])]
        system = body.get("system")
        messages = body["messages"]
        prefix = tokens(tools) + (tokens(system) if system else 0)
        marks = []   # cumulative token counts at each breakpoint, in prompt order
        if body.get("tools") and marked(body["tools"][-1]):
            marks.append(tokens(tools))
        if isinstance(system, list) and any(marked(b) for b in system):
            marks.append(prefix)
        running = prefix
        for message in messages:
            content = message["content"]
            running += tokens({"role": message["role"], "content": content})
            if isinstance(content, list) and any(marked(b) for b in content):
                marks.append(running)
        total = running
        marks = [m for m in marks if m >= MINIMUM]
        if not marks:
            full += total
            continue
        last = max(marks)
        hit = cached_prefix if cached_prefix <= last else 0
        read += hit
        write += last - hit
        full += total - last
        cached_prefix = max(cached_prefix, last)
    return full, write, read


async def chat(binary, port, rules):
    upstream = Upstream()
    server_up = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    directory = tempfile.mkdtemp(prefix="cache-estimate-")
    env = dict(os.environ, ANTHROPIC_API_KEY="estimate", LOG_LEVEL="error",
               ANTHROPIC_BASE_URL=f"http://127.0.0.1:{server_up.sockets[0].getsockname()[1]}")
    command = [os.path.abspath(binary), "serve", "--port", str(port)]
    if rules:
        path = os.path.join(directory, "rules.yaml")
        with open(path, "w") as f:
            f.write(rules.replace("UPSTREAM", env["ANTHROPIC_BASE_URL"]))
        command += ["--rules", path]
    proc = subprocess.Popen(command, env=env, cwd=directory)
    try:
        await wait_listening(port)
        path = "/mcp/chat" if rules else "/mcp/chat/stream"
        body = json.dumps({"messages": [{"role": "user", "content": "which departments do we have, and who got a 5-10% raise?"}],
                           "accumulated": False}).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                     b"connection: close\r\n\r\n" % (path.encode(), len(body)) + body)
        await asyncio.wait_for(reader.read(-1), timeout=30)
        return upstream.bodies
    finally:
        proc.terminate(); proc.wait()
        server_up.close()


UNCACHED = """version: 1
providers:
  claude: { kind: anthropic, base_url: "UPSTREAM", api_key_env: ANTHROPIC_API_KEY, prompt_cache: false }
levels:
  - { name: any, route: all, estimated_seconds: 5 }
routes:
  all: { action: stream, provider: claude, model: claude-sonnet-4-5, max_iterations: 12 }
rules:
  - { id: r, weight: 1, when: { any_keywords: [departments] } }
"""


async def main(args):
    global SCRIPT
    if args.small_calls:
        # A longer loop of small results: get_departments asked again and again, then the answer.
        SCRIPT = [[("tool", f"toolu_{i}", "get_departments", {})] for i in range(args.small_calls)] + [SCRIPT[-1]]
    cached = await chat(args.binary, args.port, None)
    uncached = await chat(args.binary, args.port, UNCACHED)
    for name, bodies in [("with breakpoints", cached), ("without", uncached)]:
        full, write, read = price(bodies)
        usd = (full * PRICES["input"] + write * PRICES["cache_write"] + read * PRICES["cache_read"]
               + len(bodies) * OUTPUT_TOKENS * PRICES["output"]) / 1e6
        sizes = ", ".join(f"{tokens(b)}" for b in bodies)
        print(f"{name:17s} {len(bodies)} calls (request sizes ≈ {sizes} tokens): input at full price {full:,}, "
              f"written to the cache {write:,}, read from it {read:,}; USD per 1,000 chats {usd * 1000:,.2f} "
              f"(input share {(usd - len(bodies) * OUTPUT_TOKENS * PRICES['output'] / 1e6) * 1000:,.2f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=".build/release/switchboard")
    parser.add_argument("--port", type=int, default=3931)
    parser.add_argument("--small-calls", type=int, default=0,
                        help="instead of the two HR calls, this many get_departments calls before the answer")
    asyncio.run(main(parser.parse_args()))
