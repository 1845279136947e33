#!/usr/bin/env python3
"""Load benchmark for POST /mcp/chat/stream (method and figures: Docs/BENCHMARKS.md).

Starts a local upstream that speaks Anthropic's streaming format, runs the release server against it,
and measures, on loopback only:
  1. CPU per relayed event: server CPU time (utime+stime from /proc) over many streams / events delivered;
  2. memory per open stream: server RSS with N streams held open, minus the RSS before, over N;
  3. that hanging up all clients closes every upstream request (cancellation under load).
Every loop is bounded in count and time.
"""
import argparse, asyncio, json, os, random, re, resource, subprocess, sys, time

DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"word "}}\n\n'
START = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_b","type":"message","role":"assistant",'
         b'"model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}\n\n'
         b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n')
END = (b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
       b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":100}}\n\n'
       b'event: message_stop\ndata: {"type":"message_stop"}\n\n')

# The same answer in OpenAI's Chat Completions format (`--openai`): `data:` chunks, usage, then [DONE].
OAI_DELTA = b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]}\n\n'
OAI_START = b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
OAI_END = (b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
           b'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":100}}\n\n'
           b'data: [DONE]\n\n')

def paced_delta(stamp):
    """A delta carrying the time it was written, in the upstream's format."""
    if OPENAI:
        return (b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"t%d "},'
                b'"finish_reason":null}]}\n\n' % stamp)
    return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"t%d "}}\n\n' % stamp

# --openai: the upstream speaks OpenAI's format and the server reaches it through a provider of its rules, so chats
# go through smart routing (POST /mcp/chat); --routed: smart routing to the built-in Anthropic provider (the same
# path, for a like-for-like comparison).
OPENAI = False
ROUTED = False
CHAT_PATH = b"/mcp/chat/stream"
# --dialect: the compatible endpoints' paths and streamed bodies, on the server's default model (the direct path,
# as /mcp/chat/stream takes).
DIALECTS = {
    "openai": (b"/v1/chat/completions", json.dumps({"model": "claude-sonnet-4-5", "stream": True,
                                                    "messages": [{"role": "user", "content": "paced"}]}).encode()),
    "anthropic": (b"/v1/messages", json.dumps({"model": "claude-sonnet-4-5", "stream": True, "max_tokens": 1024,
                                               "messages": [{"role": "user", "content": "paced"}]}).encode()),
}

async def read_request(reader):
    """Reads one request, head and body; returns the body's length."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return length

async def answer_request(reader, writer):
    """Reads one request (head and body) and writes the head of a chunked SSE answer."""
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")

def chunk(writer, data):
    """One HTTP chunk."""
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))

class Upstream:
    def __init__(self, deltas, hold):
        self.deltas, self.hold = deltas, hold
        self.open = 0
        self.closed_early = 0

    async def handle(self, reader, writer):
        try:
            while True:
                await answer_request(reader, writer)
                self.open += 1
                try:
                    chunk(writer, OAI_START if OPENAI else START)
                    if self.hold:
                        chunk(writer, OAI_DELTA if OPENAI else DELTA)
                        await writer.drain()
                        # Wait for the client to go away (or the hold to run out).
                        try:
                            await asyncio.wait_for(reader.read(1), timeout=self.hold)
                        except asyncio.TimeoutError:
                            pass
                        self.closed_early += 1
                        return
                    for _ in range(self.deltas):
                        chunk(writer, OAI_DELTA if OPENAI else DELTA)
                        await writer.drain()
                    chunk(writer, OAI_END if OPENAI else END)
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
                finally:
                    self.open -= 1
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

BODY = json.dumps({"messages": [{"role": "user", "content": "benchmark"}]}).encode()
# With --with-keys, the server checks this key (from a keys file with generous limits) on every request.
KEY = "sb_benchmark-key-0123456789abcdef0123456789"
AUTH = b""

async def post_chat(port, body, path=None):
    """Opens a connection and sends one chat request (with the key when --with-keys); the reader and writer."""
    path = path or CHAT_PATH
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n%s"
                 b"content-length: %d\r\n\r\n%s" % (path, AUTH, len(body), body))
    await writer.drain()
    return reader, writer

async def client(port, results, first_text=None, hold=False):
    reader, writer = await post_chat(port, BODY)
    events = 0
    data = b""
    try:
        while True:
            part = await reader.read(65536)
            if not part:
                break
            data = data[-64:] + part
            events += part.count(b"\ndata: ")
            # The zero-length chunk ends the response; the connection stays open for another request.
            if data.endswith(b"\r\n0\r\n\r\n"):
                break
            if first_text is not None and b"text_chunk" in part and not first_text.done():
                first_text.set_result(True)
                if hold:
                    await asyncio.sleep(3600)
    finally:
        writer.close()
    results.append(events)

def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def process_cpu(pid):
    """CPU seconds of a process id, or of every process of an `Nginx` (master and workers)."""
    return pid.cpu() if isinstance(pid, (Nginx, ClusterProcesses)) else cpu_seconds(pid)

class Nginx:
    """nginx as a reference reverse proxy in front of the paced upstream, with the settings of Docs/STREAMING.md."""
    def __init__(self, binary, upstream_port, port):
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="bench-nginx-")
        conf = os.path.join(self.dir, "nginx.conf")
        open(conf, "w").write(f"""
worker_processes auto;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log error;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {self.dir}; proxy_temp_path {self.dir}; fastcgi_temp_path {self.dir};
  uwsgi_temp_path {self.dir}; scgi_temp_path {self.dir};
  upstream model {{ server 127.0.0.1:{upstream_port}; keepalive 1024; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://model;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_cache off;
      gzip off;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }}
  }}
}}
""")
        self.proc = subprocess.Popen([binary, "-c", conf, "-p", self.dir], stderr=subprocess.DEVNULL)
        for _ in range(100):
            if self.workers():
                break
            time.sleep(0.05)
        time.sleep(0.2)

    def workers(self):
        try:
            return [int(p) for p in open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read().split()]
        except OSError:
            return []

    def cpu(self):
        return ClusterProcesses([self.proc.pid] + self.workers()).cpu()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()

def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

KEYS_FILE = None

def routing_rules(upstream_port):
    """A rules file sending every chat to one stream route: on an OpenAI provider at the upstream with --openai, else
    on the built-in Anthropic provider (ANTHROPIC_BASE_URL points at the same upstream)."""
    import tempfile
    route = "{ action: stream, provider: bench, model: m }" if OPENAI else "{ action: stream, model: m }"
    provider = f'providers:\n  bench: {{ kind: openai, base_url: "http://127.0.0.1:{upstream_port}/v1" }}\n' if OPENAI else ""
    rules = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    rules.write(f"version: 1\n{provider}levels:\n  - {{ name: any, route: bench, estimated_seconds: 1 }}\n"
                f"routes:\n  bench: {route}\n")
    rules.close()
    return rules.name

class TraceSink:
    """A collector that takes OTLP/HTTP exports and answers 200 at once without decoding them (--tracing): what
    the server spends on tracing, not what a collector spends."""
    def __init__(self):
        self.exports = 0
        self.bytes = 0

    async def handle(self, reader, writer):
        try:
            while True:
                length = await read_request(reader)
                self.exports += 1
                self.bytes += length
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

# --tracing: the OTLP endpoint the server exports to (everything sampled), or None.
TRACING_ENDPOINT = None

async def run_server(binary, upstream_port, port, database=None):
    env = dict(os.environ, ANTHROPIC_API_KEY="bench-key", ANTHROPIC_BASE_URL=f"http://127.0.0.1:{upstream_port}",
               LOG_LEVEL="error", SWITCHBOARD_UPSTREAM_MAX_CONNECTIONS="4096", SWITCHBOARD_MAX_STREAMS="8192")
    for name in [n for n in env if n.startswith("OTEL_")]:
        del env[name]
    if TRACING_ENDPOINT:
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=TRACING_ENDPOINT, OTEL_TRACES_SAMPLER="always_on")
    if database:
        env["SWITCHBOARD_DATABASE"] = database
    if KEYS_FILE:
        env["SWITCHBOARD_API_KEYS_FILE"] = KEYS_FILE
    command = [binary, "serve", "--port", str(port), "--log-level", "error"]
    if ROUTED:
        command += ["--rules", routing_rules(upstream_port)]
    proc = subprocess.Popen(command, env=env)
    for _ in range(1200):   # up to a minute: a server under valgrind starts slowly
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return proc
        except OSError:
            await asyncio.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not start")

async def response_bytes(port, body):
    """Bytes of one stream's response as the client receives them (head and chunked body)."""
    reader, writer = await post_chat(port, body)
    total = 0
    data = b""
    while not data.endswith(b"\r\n0\r\n\r\n"):
        piece = await asyncio.wait_for(reader.read(65536), timeout=60)
        if not piece:
            break
        total += len(piece)
        data = data[-16:] + piece
    writer.close()
    return total

async def wire_bytes(args):
    """Bytes on the wire for one answer of --wire-bytes deltas, with and without `accumulated`."""
    upstream = Upstream(args.wire_bytes, hold=0)
    up = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    server = await run_server(args.binary, up.sockets[0].getsockname()[1], args.port)
    try:
        lean = json.dumps({"messages": [{"role": "user", "content": "x"}], "accumulated": False}).encode()
        full = await response_bytes(args.port, BODY)
        short = await response_bytes(args.port, lean)
        print(f"wire bytes for a {args.wire_bytes}-delta answer ({len(DELTA)} upstream bytes each): "
              f"with accumulated {full:,} bytes, without {short:,} bytes ({full / short:.0f}x)")
    finally:
        server.terminate(); server.wait()
        up.close()

class PacedUpstream:
    """An upstream that streams like a model: each delta its own write and flush, `interval` apart, carrying the
    monotonic time it was written, so a client can measure each delta's latency end to end."""
    def __init__(self, deltas, interval):
        self.deltas, self.interval = deltas, interval

    async def handle(self, reader, writer):
        try:
            while True:
                await answer_request(reader, writer)
                chunk(writer, OAI_START if OPENAI else START)
                await writer.drain()
                for _ in range(self.deltas):
                    await asyncio.sleep(self.interval)
                    chunk(writer, paced_delta(time.monotonic_ns()))
                    await writer.drain()
                chunk(writer, OAI_END if OPENAI else END)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

# The stamp of a delta as the upstream sends it (`"text"`) or as Switchboard relays it (`"chunk"`); never one
# repeated inside `accumulated` (servers that ignore `"accumulated": false` still measure right).
STAMP = re.compile(rb'"(?:text|chunk|content)":"t(\d{6,}) ')

async def paced_client(port, path, body, latencies, counts, start_delay):
    """One paced stream: for each delta that arrives, its latency (arrival minus the upstream's write time)."""
    await asyncio.sleep(start_delay)
    reader, writer = await post_chat(port, body, path)
    data = b""
    seen = 0
    try:
        while True:
            part = await reader.read(65536)
            now = time.monotonic_ns()
            if not part:
                break
            for stamp in STAMP.findall(part):
                latencies.append((now - int(stamp)) / 1e6)
                seen += 1
            data = data[-64:] + part
            if data.endswith(b"\r\n0\r\n\r\n"):
                break
    finally:
        writer.close()
    counts.append(seen)

def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")

async def paced(args):
    """Paced streams, side by side: the client reading the upstream directly (the floor), then through Switchboard."""
    upstream = PacedUpstream(args.deltas, args.interval / 1000)
    up = await asyncio.start_server(upstream.handle, "127.0.0.1", 0, backlog=4096)
    up_port = up.sockets[0].getsockname()[1]
    offered = args.paced * 1000 / args.interval
    body = json.dumps({"messages": [{"role": "user", "content": "paced"}], "accumulated": False}).encode()
    print(f"paced: {args.paced} streams, {args.deltas} deltas each, one every {args.interval} ms "
          f"(offered {offered:,.0f} events/s), starts staggered over the first interval")

    async def run(port, path, body, pid=None):
        latencies, counts = [], []
        cpu0, t0 = (process_cpu(pid) if pid else 0), time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(
            paced_client(port, path, body, latencies, counts, random.random() * args.interval / 1000)
            for _ in range(args.paced))), timeout=args.deltas * args.interval / 1000 + 120)
        elapsed = time.monotonic() - t0
        delivered = sum(counts)
        cpu = (process_cpu(pid) - cpu0) if pid else 0
        return latencies, delivered, elapsed, cpu

    upstream_path = b"/v1/chat/completions" if OPENAI else b"/v1/messages"
    direct, d_count, d_time, _ = await run(up_port, upstream_path, body)
    print(f"  direct:      {d_count}/{args.paced * args.deltas} deltas, latency p50 {percentile(direct, .5):.2f} ms, "
          f"p99 {percentile(direct, .99):.2f} ms")
    if args.nginx:
        # The reference hop: the same client through nginx (proxy_buffering off), nginx's CPU per relayed event.
        nginx = Nginx(args.nginx, up_port, args.port + 1)
        try:
            via, n_count, n_time, n_cpu = await run(args.port + 1, upstream_path, body, nginx)
            print(f"  nginx:       {n_count}/{args.paced * args.deltas} deltas, latency p50 {percentile(via, .5):.2f} ms, "
                  f"p99 {percentile(via, .99):.2f} ms; added p50 {percentile(via, .5) - percentile(direct, .5):+.2f} ms, "
                  f"p99 {percentile(via, .99) - percentile(direct, .99):+.2f} ms; "
                  f"CPU {n_cpu:.2f} s = {n_cpu / max(n_count + 3 * args.paced, 1) * 1e6:.1f} µs per relayed event")
        finally:
            nginx.stop()
    if args.cluster:
        return await paced_cluster(args, up, up_port, body, run, direct)
    server = await run_server(args.binary, up_port, args.port)
    try:
        warm = []
        await asyncio.gather(*(paced_client(args.port, CHAT_PATH, body, [], warm, 0) for _ in range(5)))
        rss0 = rss_kib(server.pid)
        through, t_count, t_time, cpu = await run(args.port, CHAT_PATH, body, server.pid)
        print(f"  switchboard: {t_count}/{args.paced * args.deltas} deltas ({t_count / t_time:,.0f}/s over the run), "
              f"latency p50 {percentile(through, .5):.2f} ms, p99 {percentile(through, .99):.2f} ms; "
              f"added p50 {percentile(through, .5) - percentile(direct, .5):+.2f} ms, "
              f"p99 {percentile(through, .99) - percentile(direct, .99):+.2f} ms")
        # Every relayed delta is one text_chunk event; session_start, iteration_start and complete add 3 per stream.
        events = t_count + 3 * args.paced
        print(f"  server CPU: {cpu:.2f} s = {cpu / max(events, 1) * 1e6:.1f} µs per relayed event; RSS {rss0 / 1024:.1f} MiB before")
        if args.dialect:
            # The same streams through a compatible endpoint, on the same server: its CPU per event with the same
            # denominator (each delta, and 3 per stream for its start and end), so the two figures compare directly.
            path, dialect_body = DIALECTS[args.dialect]
            d_through, dd_count, dd_time, d_cpu = await run(args.port, path, dialect_body, server.pid)
            d_events = dd_count + 3 * args.paced
            print(f"  {args.dialect:11s} {dd_count}/{args.paced * args.deltas} deltas, latency p50 {percentile(d_through, .5):.2f} ms, "
                  f"p99 {percentile(d_through, .99):.2f} ms; server CPU {d_cpu:.2f} s = {d_cpu / max(d_events, 1) * 1e6:.1f} µs per "
                  f"relayed event ({(d_cpu / max(d_events, 1)) / max(cpu / max(events, 1), 1e-9) * 100 - 100:+.0f} % beside /mcp/chat/stream)")
    finally:
        server.terminate(); server.wait()
    if args.tracing:
        # The same streams on a server that traces every chat into a collector that takes everything at once.
        global TRACING_ENDPOINT
        sink = TraceSink()
        collector = await asyncio.start_server(sink.handle, "127.0.0.1", 0)
        TRACING_ENDPOINT = f"http://127.0.0.1:{collector.sockets[0].getsockname()[1]}"
        server = await run_server(args.binary, up_port, args.port)
        try:
            await asyncio.gather(*(paced_client(args.port, CHAT_PATH, body, [], [], 0) for _ in range(5)))
            traced, tr_count, tr_time, tr_cpu = await run(args.port, CHAT_PATH, body, server.pid)
            await asyncio.sleep(6)   # the batch processor's 5 s schedule: the run's spans exported
            tr_events = tr_count + 3 * args.paced
            print(f"  traced:      {tr_count}/{args.paced * args.deltas} deltas, latency p50 {percentile(traced, .5):.2f} ms, "
                  f"p99 {percentile(traced, .99):.2f} ms; server CPU {tr_cpu:.2f} s = {tr_cpu / max(tr_events, 1) * 1e6:.1f} µs per "
                  f"relayed event; {(tr_cpu - cpu) / args.paced * 1e6:+.0f} µs per chat beside tracing off; "
                  f"{sink.exports} exports, {sink.bytes / max(args.paced + 5, 1) / 1024:.1f} KiB of spans per chat")
        finally:
            server.terminate(); server.wait()
            collector.close()
            TRACING_ENDPOINT = None
    up.close()

class ClusterProcesses:
    """The instances (and nginx) of scripts/cluster.sh, for CPU accounting: their summed CPU seconds."""
    def __init__(self, pids):
        self.pids = pids

    def cpu(self):
        total = 0.0
        for pid in self.pids:
            try:
                total += cpu_seconds(pid)
            except OSError:
                pass
        return total

async def paced_cluster(args, up, up_port, body, run, direct):
    """The paced streams through scripts/cluster.sh: N instances sharing PostgreSQL behind nginx."""
    import tempfile
    directory = tempfile.mkdtemp(prefix="bench-cluster-")
    env = dict(os.environ, ANTHROPIC_API_KEY="bench-key", ANTHROPIC_BASE_URL=f"http://127.0.0.1:{up_port}", LOG_LEVEL="error",
               SWITCHBOARD_UPSTREAM_MAX_CONNECTIONS="4096", SWITCHBOARD_MAX_STREAMS="8192")
    if args.cluster_database:
        env["SWITCHBOARD_DATABASE"] = args.cluster_database
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    started = subprocess.run(["bash", os.path.join(root, "scripts/cluster.sh"), "start", "-n", str(args.cluster), "--port",
                              str(args.port), "--binary", os.path.abspath(args.binary), "--dir", directory],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    if started.returncode != 0:
        raise SystemExit("cluster.sh start failed:\n" + started.stdout + started.stderr)
    pids = {line.split()[0]: int(line.split()[2]) for line in started.stdout.splitlines() if len(line.split()) == 3}
    instances = ClusterProcesses([pid for name, pid in pids.items() if name != "nginx"])
    nginx = ClusterProcesses([pids["nginx"]] + [int(c) for c in open(f"/proc/{pids['nginx']}/task/{pids['nginx']}/children").read().split()])
    try:
        warm = []
        await asyncio.gather(*(paced_client(args.port, CHAT_PATH, body, [], warm, 0) for _ in range(10)))
        n0, p0 = nginx.cpu(), postgres_cpu()
        through, t_count, t_time, cpu = await run(args.port, CHAT_PATH, body, instances)
        n_cpu, p_cpu = nginx.cpu() - n0, postgres_cpu() - p0
        events = t_count + 3 * args.paced
        print(f"  cluster ({args.cluster} instances behind nginx): {t_count}/{args.paced * args.deltas} deltas "
              f"({t_count / t_time:,.0f}/s over the run), latency p50 {percentile(through, .5):.2f} ms, "
              f"p99 {percentile(through, .99):.2f} ms; added p50 {percentile(through, .5) - percentile(direct, .5):+.2f} ms, "
              f"p99 {percentile(through, .99) - percentile(direct, .99):+.2f} ms")
        print(f"  CPU per relayed event: instances {cpu / max(events, 1) * 1e6:.1f} µs, nginx {n_cpu / max(events, 1) * 1e6:.1f} µs, "
              f"PostgreSQL {p_cpu / max(events, 1) * 1e6:.1f} µs ({p_cpu / args.paced * 1e3:.2f} ms per stream)")
    finally:
        subprocess.run(["bash", os.path.join(root, "scripts/cluster.sh"), "stop", "--dir", directory], timeout=120)
        up.close()

def postgres_cpu():
    """CPU seconds of every PostgreSQL server process on this machine (the shared store's side of the cost)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if open(f"/proc/{pid}/comm").read().strip() == "postgres":
                total += cpu_seconds(int(pid))
        except OSError:
            pass
    return total

async def timed_request(port, path, body):
    """One request on its own connection: seconds to the response head, then read to its end."""
    started = time.monotonic()
    reader, writer = await post_chat(port, body, path)
    head = await reader.readuntil(b"\r\n\r\n")
    answered = time.monotonic() - started
    try:
        if b"transfer-encoding: chunked" in head.lower():
            data = b""
            while not data.endswith(b"\r\n0\r\n\r\n"):
                part = await reader.read(65536)
                if not part:
                    break
                data = data[-16:] + part
        else:
            length = int(re.search(rb"content-length: *(\d+)", head, re.I).group(1))
            await reader.readexactly(length)
    finally:
        writer.close()
    return answered, head.split(b" ", 2)[1]

async def quota_cost(args):
    """What shared quotas cost a request: the same keyed requests against quotas in memory (SQLite database) and
    quotas in PostgreSQL (--database URL): time to the response head, server and PostgreSQL CPU per request."""
    global KEYS_FILE, AUTH
    import hashlib, tempfile
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    keys = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    keys.write("version: 1\nkeys:\n  - id: bench-%d\n    sha256: %s\n    limits: { concurrent_streams: 100000, "
               "requests_per_minute: 100000000, output_tokens_per_day: 100000000000 }\n" % (os.getpid(), digest))
    keys.close()
    KEYS_FILE, AUTH = keys.name, b"authorization: Bearer %s\r\n" % KEY.encode()
    upstream = Upstream(1, 0)
    up = await asyncio.start_server(upstream.handle, "127.0.0.1", 0, backlog=4096)
    up_port = up.sockets[0].getsockname()[1]
    print(f"quota cost: {args.quota_requests} requests per kind, {args.concurrency} at a time, one key with every limit set")
    for store, database in (("in memory", None), ("PostgreSQL", args.quota_cost)):
        server = await run_server(args.binary, up_port, args.port, database=database)
        try:
            for kind, path in (("analyze (rate limit: 1 round trip)", b"/mcp/chat/analyze"),
                               ("stream (admission: 1 round trip; release and tokens batched)", b"/mcp/chat/stream")):
                for _ in range(20):   # warm: connections, the schema, the function's plan
                    await timed_request(args.port, path, BODY)
                latencies = []
                semaphore = asyncio.Semaphore(args.concurrency)
                async def one():
                    async with semaphore:
                        answered, status = await timed_request(args.port, path, BODY)
                        if status != b"200":
                            raise SystemExit(f"{kind}: status {status.decode()}")
                        latencies.append(answered * 1000)
                cpu0, pg0, t0 = cpu_seconds(server.pid), postgres_cpu(), time.monotonic()
                await asyncio.gather(*(one() for _ in range(args.quota_requests)))
                elapsed = time.monotonic() - t0
                cpu, pg = cpu_seconds(server.pid) - cpu0, postgres_cpu() - pg0
                n = len(latencies)
                print(f"  {store:10s} {kind}: {n / elapsed:,.0f}/s, head p50 {percentile(latencies, .5):.2f} ms, "
                      f"p99 {percentile(latencies, .99):.2f} ms; server CPU {cpu / n * 1e6:.0f} µs/request, "
                      f"PostgreSQL CPU {pg / n * 1e6:.0f} µs/request")
        finally:
            server.terminate(); server.wait()
    up.close()

async def main(args):
    if args.quota_cost:
        return await quota_cost(args)
    if args.wire_bytes:
        return await wire_bytes(args)
    if args.paced:
        return await paced(args)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    throughput = Upstream(args.deltas, hold=0)
    holding = Upstream(0, hold=60)
    up1 = await asyncio.start_server(throughput.handle, "127.0.0.1", 0, backlog=4096)
    up2 = await asyncio.start_server(holding.handle, "127.0.0.1", 0, backlog=4096)

    # 1. CPU per relayed event.
    server = await run_server(args.binary, up1.sockets[0].getsockname()[1], args.port)
    try:
        warm = []
        await asyncio.gather(*(client(args.port, warm) for _ in range(50)))
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        results = []
        sem = asyncio.Semaphore(args.concurrency)
        async def limited():
            async with sem:
                await client(args.port, results)
        await asyncio.wait_for(asyncio.gather(*(limited() for _ in range(args.streams))), timeout=300)
        cpu, wall = cpu_seconds(server.pid) - cpu0, time.monotonic() - t0
        events = sum(results)
        # session_start, iteration_start and complete, and the routing event of smart routing.
        complete = sum(1 for r in results if r == args.deltas + 3 + (1 if CHAT_PATH == b"/mcp/chat" else 0))
        print(f"throughput: {len(results)} streams ({complete} complete), {args.concurrency} at a time, "
              f"{events} events in {wall:.2f} s = {events / wall:,.0f} events/s")
        print(f"server CPU: {cpu:.2f} s = {cpu / events * 1e6:.1f} µs per relayed event")
    finally:
        server.terminate(); server.wait()

    # 2. Memory per open stream, 3. cancellation of every upstream request on hang-up.
    server = await run_server(args.binary, up2.sockets[0].getsockname()[1], args.port)
    try:
        warm = []
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(client(args.port, warm) for _ in range(20)), return_exceptions=True)
        base = rss_kib(server.pid)
        firsts = [loop.create_future() for _ in range(args.open)]
        results = []
        tasks = [asyncio.create_task(client(args.port, results, f, hold=True)) for f in firsts]
        await asyncio.wait_for(asyncio.gather(*firsts), timeout=120)
        await asyncio.sleep(1)
        full = rss_kib(server.pid)
        print(f"memory: {args.open} open streams, RSS {base / 1024:.1f} MiB before, {full / 1024:.1f} MiB with them open "
              f"= {(full - base) / args.open:.1f} KiB per open stream (upstream connections open: {holding.open})")
        t0 = time.monotonic()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        while holding.open > 0 and time.monotonic() - t0 < 10:
            await asyncio.sleep(0.01)
        print(f"hang-up: all {args.open} clients closed; upstream requests still open after "
              f"{time.monotonic() - t0:.2f} s: {holding.open}")
    finally:
        server.terminate(); server.wait()

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=".build/release/switchboard")
    parser.add_argument("--port", type=int, default=3917)
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--deltas", type=int, default=100)
    parser.add_argument("--open", type=int, default=1000)
    parser.add_argument("--paced", type=int, default=0,
                        help="real pace: this many concurrent streams, each delta its own write --interval ms apart")
    parser.add_argument("--interval", type=float, default=50, help="milliseconds between deltas in --paced mode")
    parser.add_argument("--wire-bytes", type=int, default=0,
                        help="only measure the bytes of one answer of this many deltas, with and without accumulated")
    parser.add_argument("--openai", action="store_true",
                        help="the upstream speaks OpenAI's Chat Completions format, reached through a rules provider (POST /mcp/chat)")
    parser.add_argument("--dialect", choices=sorted(DIALECTS),
                        help="in --paced mode, also run the streams through this compatible endpoint on the same server")
    parser.add_argument("--routed", action="store_true",
                        help="through smart routing (POST /mcp/chat) to the built-in Anthropic provider, to compare with --openai")
    parser.add_argument("--nginx", nargs="?", const="/usr/sbin/nginx", default=None,
                        help="in --paced mode, also measure the client through nginx (the reference proxy hop)")
    parser.add_argument("--asyncio", action="store_true",
                        help="use asyncio's own event loop even when uvloop is installed (uvloop costs the client "
                             "and the upstream less CPU, so they disturb the server less)")
    parser.add_argument("--quota-cost", metavar="POSTGRES_URL",
                        help="measure what shared quotas cost a request: keyed requests with quotas in memory, then in "
                             "this PostgreSQL database")
    parser.add_argument("--quota-requests", type=int, default=2000)
    parser.add_argument("--cluster", type=int, default=0,
                        help="in --paced mode, run the streams through scripts/cluster.sh with this many instances behind nginx")
    parser.add_argument("--cluster-database", help="the PostgreSQL URL the cluster shares (default: scripts/test-postgres.sh's)")
    parser.add_argument("--tracing", action="store_true",
                        help="in --paced mode, also run the streams on a server that traces every chat (OTLP/HTTP to a sink)")
    parser.add_argument("--with-keys", action="store_true",
                        help="serve with an API keys file and send the key: the cost of authentication and quotas")
    args = parser.parse_args()
    OPENAI = args.openai
    ROUTED = args.openai or args.routed
    if ROUTED:
        CHAT_PATH = b"/mcp/chat"
    if args.with_keys:
        import hashlib, tempfile
        digest = hashlib.sha256(KEY.encode()).hexdigest()
        keys = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        keys.write("version: 1\nkeys:\n  - id: bench\n    sha256: %s\n    limits: { concurrent_streams: 8000, "
                   "requests_per_minute: 10000000, output_tokens_per_day: 1000000000, max_tokens: 4096 }\n" % digest)
        keys.close()
        KEYS_FILE = keys.name
        AUTH = b"authorization: Bearer %s\r\n" % KEY.encode()
    loop = "asyncio"
    if not args.asyncio:
        try:
            import uvloop
            uvloop.install()
            loop = "uvloop"
        except ImportError:
            pass
    print(f"(client and upstream on {loop})")
    asyncio.run(main(args))
