#!/usr/bin/env bash
# Streams under load on loopback: CPU per relayed event, memory per open stream, cancellation on hang-up.
# --with-keys serves with an API keys file and sends the key (the cost of authentication and quotas).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product switchboard >/dev/null
python3 scripts/bench_stream.py "$@"
