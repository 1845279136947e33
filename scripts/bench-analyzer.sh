#!/usr/bin/env bash
# Measures the analyzer in a release build; the figures and method are in Docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product switchboard >/dev/null
bin=.build/release/switchboard
echo "== shipped rules.yaml, typical query"
$bin bench
echo "== shipped rules.yaml, the seed query"
$bin bench --query "give me list of employees with 5-10% increment"
echo "== 1,000 generated rules (1 in 10 a regex)"
$bin bench --generated 1000
echo "== 1,000 generated rules, keywords only"
$bin bench --generated 1000 --regex-every 0
echo "== 1,000 generated rules, all regexes (worst case)"
$bin bench --generated 1000 --regex-every 1
