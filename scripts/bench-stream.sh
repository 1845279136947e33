#!/usr/bin/env bash
# Streams under load on loopback: CPU per relayed event, memory per open stream, cancellation on hang-up.
# --with-keys serves with an API keys file and sends the key (the cost of authentication and quotas);
# --paced N runs N streams at real pace (each delta its own write) beside the direct path; --wire-bytes N
# counts the bytes of one N-delta answer with and without accumulated; --openai streams from an OpenAI-compatible
# upstream through a rules provider (smart routing), --routed from the Anthropic one through smart routing.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product switchboard >/dev/null
python3 scripts/bench_stream.py "$@"
