#!/usr/bin/env python3
"""What one request costs (issue #25; method and figures: Docs/BENCHMARKS.md "Per request").

Starts a local upstream in Anthropic's streaming format whose answers are short (a start, 3 text deltas 5 ms
apart, the end), runs the release server against it, and measures on loopback, each side by side with the same
client reading the upstream directly:
  1. short chats one at a time: time to first text (p50, p99), added by the server; server CPU per chat;
  2. short chats 50 at a time for a few seconds: chats per second, and time to first text p99;
  3. with wrk (Debian's package), `POST /mcp/chat/analyze` against `GET /health` on the same server, 32
     connections: requests per second.
Each chat opens its own connection, as a browser's first request of a chat would find none idle; the upstream
keeps its connections for the server's pool.

`--compare B2 [B3…] --rounds N` measures several builds in one sitting: each round measures the direct path, then
each build in turn, and the medians of the rounds close the report (this machine's speed swings by a third from
minute to minute, so only builds measured side by side are compared).
"""
import argparse, asyncio, json, os, shutil, subprocess, tempfile, time

START = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant",'
         b'"model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}\n\n'
         b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n')
DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ok "}}\n\n'
END = (b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
       b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
       b'"usage":{"output_tokens":3}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n')
BODY = json.dumps({"messages": [{"role": "user", "content": "benchmark"}], "accumulated": False}).encode()


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


async def upstream(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n" + chunk(START))
            for index in range(3):
                writer.write(chunk(DELTA))
                await writer.drain()
                if index < 2:
                    await asyncio.sleep(0.005)
            writer.write(chunk(END) + b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def one_chat(port, path, marker):
    """One chat on a new connection: (seconds to the first text, seconds to the end)."""
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                 % (path, len(BODY), BODY))
    first, data = None, b""
    try:
        while True:
            part = await asyncio.wait_for(reader.read(65536), timeout=30)
            if not part:
                break
            data = data[-32:] + part
            if first is None and marker in part:
                first = time.perf_counter() - t0
            if data.endswith(b"\r\n0\r\n\r\n"):
                break
    finally:
        writer.close()
    return first, time.perf_counter() - t0


def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else float("nan")


async def sequential(port, path, marker, count, pid=None):
    firsts = []
    c0 = cpu(pid) if pid else 0
    for _ in range(count):
        first, _ = await one_chat(port, path, marker)
        firsts.append(first)
    return firsts, ((cpu(pid) - c0) / count if pid else 0)


async def concurrent(port, path, marker, workers, seconds, pid=None):
    firsts, done = [], 0
    end = time.perf_counter() + seconds
    c0 = cpu(pid) if pid else 0

    async def worker():
        nonlocal done
        while time.perf_counter() < end:
            first, _ = await one_chat(port, path, marker)
            firsts.append(first)
            done += 1
    await asyncio.gather(*(worker() for _ in range(workers)))
    return done / seconds, firsts, ((cpu(pid) - c0) / max(done, 1) if pid else 0)


def wrk(url, seconds, lua=None):
    command = ["wrk", "-t2", "-c32", f"-d{seconds}s", url]
    if lua:
        command[1:1] = ["-s", lua]
    out = subprocess.run(command, capture_output=True, text=True).stdout
    line = next((l for l in out.splitlines() if l.startswith("Requests/sec:")), "Requests/sec: 0")
    return float(line.split()[1])


async def wait_listening(port, seconds=10):
    """Waits until something accepts connections on 127.0.0.1:`port` (a server just started)."""
    for _ in range(int(seconds / 0.05)):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)


async def start_server(binary, port, up_port, directory):
    env = dict(os.environ, ANTHROPIC_API_KEY="bench", ANTHROPIC_BASE_URL=f"http://127.0.0.1:{up_port}", LOG_LEVEL="error")
    server = subprocess.Popen([os.path.abspath(binary), "serve", "--port", str(port), "--log-level", "error"], env=env, cwd=directory)
    await wait_listening(port)
    await sequential(port, b"/mcp/chat/stream", b"text_chunk", 20)   # warm-up
    return server


def keep(results, **measures):
    """Adds this round's `measures` to a binary's lists."""
    for name, value in measures.items():
        results[name].append(value)


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


async def main(args):
    up = await asyncio.start_server(upstream, "127.0.0.1", 0)
    up_port = up.sockets[0].getsockname()[1]
    directory = tempfile.mkdtemp(prefix="bench-requests-")
    binaries = [args.binary] + (args.compare or [])
    servers = []
    lua = os.path.join(directory, "analyze.lua")
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                'wrk.body = \'{"messages":[{"role":"user","content":"compare the median salary in Berlin versus London"}]}\'\n')
    # Per binary, one list per measure; each round measures the direct path and then every binary in turn, so the
    # builds alternate in one sitting and each is compared with the direct path of its own round.
    results = {binary: {"added50": [], "added99": [], "cpu1": [], "ratio": [], "added99c": [], "cpu50": [], "analyze": []}
               for binary in binaries}
    try:
        for index, binary in enumerate(binaries):
            servers.append(await start_server(binary, args.port + index, up_port, directory))
        for round in range(args.rounds):
            direct, _ = await sequential(up_port, b"/v1/messages", b"text_delta", args.chats)
            for index, binary in enumerate(binaries):
                port, pid = args.port + index, servers[index].pid
                profiler = None
                if args.perf and round == 0 and index == 0:
                    # The server's CPU by function while the sequential chats run (perf's software clock: no hardware
                    # counters needed).
                    profiler = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "4999", "-g", "-p", str(pid), "-o", args.perf],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    await asyncio.sleep(0.5)
                through, per_chat = await sequential(port, b"/mcp/chat/stream", b"text_chunk", args.chats, pid)
                if profiler:
                    profiler.send_signal(2)
                    profiler.wait()
                keep(results[binary], added50=pct(through, .5) - pct(direct, .5), added99=pct(through, .99) - pct(direct, .99),
                     cpu1=per_chat * 1e6)
                print(f"round {round + 1}, {binary}: C=1, {args.chats} short chats: first text direct p50 {pct(direct, .5):.2f} / p99 "
                      f"{pct(direct, .99):.2f} ms; switchboard p50 {pct(through, .5):.2f} / p99 {pct(through, .99):.2f} ms; added p50 "
                      f"{pct(through, .5) - pct(direct, .5):+.2f} ms, p99 {pct(through, .99) - pct(direct, .99):+.2f} ms; "
                      f"server CPU {per_chat * 1e6:.0f} µs per chat", flush=True)
            d_rate, d_firsts, _ = await concurrent(up_port, b"/v1/messages", b"text_delta", 50, args.seconds)
            for index, binary in enumerate(binaries):
                port, pid = args.port + index, servers[index].pid
                profiler = None
                if args.perf_load and round == 0 and index == 0:
                    profiler = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "4999", "-g", "-p", str(pid), "-o", args.perf_load],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    await asyncio.sleep(0.5)
                s_rate, s_firsts, s_cpu = await concurrent(port, b"/mcp/chat/stream", b"text_chunk", 50, args.seconds, pid)
                if profiler:
                    profiler.send_signal(2)
                    profiler.wait()
                keep(results[binary], ratio=s_rate / d_rate, added99c=pct(s_firsts, .99) - pct(d_firsts, .99), cpu50=s_cpu * 1e6)
                print(f"round {round + 1}, {binary}: C=50, {args.seconds} s: direct {d_rate:,.0f} chats/s (first text p99 "
                      f"{pct(d_firsts, .99):.1f} ms); switchboard {s_rate:,.0f} chats/s = {s_rate / d_rate:.2f}x (first text p99 "
                      f"{pct(s_firsts, .99):.1f} ms, added {pct(s_firsts, .99) - pct(d_firsts, .99):+.1f} ms); server CPU "
                      f"{s_cpu * 1e6:.0f} µs per chat", flush=True)
            if shutil.which("wrk"):
                for index, binary in enumerate(binaries):
                    base = f"http://127.0.0.1:{args.port + index}"
                    health = wrk(base + "/health", args.seconds)
                    analyze = wrk(base + "/mcp/chat/analyze", args.seconds, lua)
                    results[binary]["analyze"].append(analyze / health)
                    print(f"round {round + 1}, {binary}: wrk, 32 connections, {args.seconds} s: GET /health {health:,.0f}/s; "
                          f"POST /mcp/chat/analyze {analyze:,.0f}/s = {analyze / health:.2f}x", flush=True)
            else:
                print("wrk is not installed (apt-get install wrk): analyze against /health not measured")
        if args.rounds > 1 or len(binaries) > 1:
            print(f"medians of {args.rounds} rounds:")
            for binary in binaries:
                r = results[binary]
                analyze = f"; analyze {median(r['analyze']):.2f}x /health" if r["analyze"] else ""
                print(f"  {binary}: C=1 added first text p50 {median(r['added50']):+.2f} ms, p99 {median(r['added99']):+.2f} ms, "
                      f"CPU {median(r['cpu1']):.0f} µs per chat; C=50 {median(r['ratio']):.2f}x the direct path, added p99 "
                      f"{median(r['added99c']):+.1f} ms, CPU {median(r['cpu50']):.0f} µs per chat{analyze}")
    finally:
        for server in servers:
            server.terminate(); server.wait()
        up.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=".build/release/switchboard")
    parser.add_argument("--port", type=int, default=3941)
    parser.add_argument("--chats", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="measure every binary this many times, alternating; medians at the end")
    parser.add_argument("--compare", nargs="+", metavar="BINARY", help="other builds measured in the same rounds, in turn")
    parser.add_argument("--perf", metavar="FILE", help="record the first binary's profile during its first one-at-a-time chats (perf)")
    parser.add_argument("--perf-load", metavar="FILE", help="record the first binary's profile during its first chats 50 at a time (perf)")
    asyncio.run(main(parser.parse_args()))
