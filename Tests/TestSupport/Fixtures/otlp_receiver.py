"""An OTLP/HTTP trace receiver for the tracing tests: decodes each `POST /v1/traces` (protobuf, or gzip'd
protobuf) with the official `opentelemetry-proto` classes and keeps the spans; `GET /spans` answers them as JSON
(trace and span ids in hex, attributes as plain values). `--delay SECONDS` answers every export that late (a slow
collector). Prints `listening PORT` once it listens."""
import argparse, gzip, json, signal, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

SPANS = []
LOCK = threading.Lock()
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if DELAY:
            time.sleep(DELAY)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = []
        for resource in request.resource_spans:
            service = {kv.key: value(kv.value) for kv in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    spans.append({
                        "name": span.name, "kind": KINDS.get(span.kind, str(span.kind)),
                        "traceId": span.trace_id.hex(), "spanId": span.span_id.hex(),
                        "parentSpanId": span.parent_span_id.hex(),
                        "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                        "status": span.status.code,
                        "attributes": {kv.key: value(kv.value) for kv in span.attributes},
                        "events": [e.name for e in span.events],
                        "resource": service,
                    })
        with LOCK:
            SPANS.extend(spans)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def do_GET(self):
        with LOCK:
            answer = json.dumps(SPANS).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


# A parent that ignores SIGTERM passes that on; this server stops on it.
signal.signal(signal.SIGTERM, signal.SIG_DFL)
parser = argparse.ArgumentParser()
parser.add_argument("--delay", type=float, default=0)
DELAY = parser.parse_args().delay
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
