#!/usr/bin/env bash
# Benchmark: what answering by rules costs next to the socket. Side by side
# in one run, at C connections of 64-byte request/response (`sockit bench
# echo`):
#   echo   - `sockit echo serve` (the baseline: a plain echo service)
#   rules  - `sockit nc -lk --rules` with 100 rules: 25 exact, 25 substring,
#            25 hex patterns and 24 regexes that do not match, then a
#            catch-all regex whose reply template is the capture {{0}}
#            (so it echoes, and the load generator checks every byte)
# Each round rotates who goes first (order effects here are larger than
# the differences measured). Reports medians, the spread, and the ratio
# rules ÷ echo of requests/s (target ≥ 0.8 at C=10).
#
# The rules server's output goes to OUT (default /dev/null, where it skips
# handing each read to its display; give a file to measure the display too).
#
#   scripts/bench-assistant.sh [SECONDS_PER_RUN=4] [ROUNDS=5] [C=10] [OUT=/dev/null]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-4}"
rounds="${2:-5}"
conns="${3:-10}"
out="${4:-/dev/null}"

cargo build --release --locked -q
sockit="$PWD/target/release/sockit"
work="$PWD/target/bench-assistant"
rm -rf "$work"; mkdir -p "$work"
export XDG_CONFIG_HOME="$work/cfg"

rules="$work/rules.toml"
{
  echo 'frame = "raw"'
  for i in $(seq 25); do printf '[[rule]]\nexact = "STATUS %d"\nreply = "ok %d"\n' "$i" "$i"; done
  for i in $(seq 25); do printf '[[rule]]\ncontains = "ERR-%d"\nreply = "seen"\n' "$i"; done
  for i in $(seq 25); do printf '[[rule]]\nhex = "ff %02x ?? ??"\nreply_hex = "ff {{1}}"\n' "$i"; done
  for i in $(seq 24); do printf "[[rule]]\nregex = '^GET /item/%d/(\\\\d+)\$'\nreply = \"item {{1}}\"\n" "$i"; done
  printf "[[rule]]\nname = \"echo\"\nregex = '(?s-u)^.+\$'\nreply = \"{{0}}\"\n"
} > "$rules"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$sockit" echo serve --tcp 127.0.0.1:0 --insecure-no-auth > "$work/echo.out" 2> "$work/echo.err" &
pids+=($!)
"$sockit" nc -lk 127.0.0.1 0 --rules "$rules" < /dev/null > "$out" 2> "$work/rules.err" &
pids+=($!)
for _ in $(seq 400); do
  grep -q '^listening on' "$work/echo.out" 2>/dev/null && grep -q '^listening on' "$work/rules.err" 2>/dev/null && break
  sleep 0.025
done
echo_addr=$(sed -n 's/^listening on tcp \([^ ]*\).*/\1/p' "$work/echo.out" | head -1)
rules_addr=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$work/rules.err" | head -1)
[ -n "$echo_addr" ] && [ -n "$rules_addr" ] || { echo "a server did not start" >&2; exit 1; }

results="$work/results.jsonl"
: > "$results"
order=(echo rules)
for round in $(seq "$rounds"); do
  for name in "${order[@]}"; do
    addr_var="${name}_addr"
    line=$("$sockit" bench echo "${!addr_var}" --connections "$conns" --duration "$secs" --json --insecure-no-auth)
    echo "{\"server\":\"$name\",\"round\":$round,\"report\":$line}" >> "$results"
  done
  order=("${order[@]:1}" "${order[0]}")   # rotate who goes first
  echo "round $round/$rounds done" >&2
done

python3 - "$results" "$secs" "$rounds" "$conns" "$out" <<'PY'
import json, statistics, sys
path, secs, rounds, conns, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
runs = {}
for line in open(path):
    r = json.loads(line)
    runs.setdefault(r["server"], []).append(r["report"])
def med(s, key): return statistics.median(x[key] for x in runs[s])
def spread(s, key):
    v = [x[key] for x in runs[s]]
    return f"{min(v):,.0f}–{max(v):,.0f}"
print(f"\nTCP request/response, 64-byte messages, C={conns}, {secs} s per run, median of {rounds} rounds;"
      f" the rules server's output to {out}\n")
print("| server | req/s (median) | req/s (min–max) | p99 µs | errors |")
print("|---|---|---|---|---|")
for s, label in (("echo", "sockit echo serve"), ("rules", "sockit nc -lk --rules (100 rules)")):
    errs = sum(x["errors"] for x in runs[s])
    print(f"| {label} | {med(s, 'requests_per_sec'):,.0f} | {spread(s, 'requests_per_sec')} | {med(s, 'p99_us'):,.0f} | {errs} |")
ratios = sorted(a["requests_per_sec"] / b["requests_per_sec"] for a, b in zip(runs["rules"], runs["echo"]))
print(f"\nrules ÷ echo: {med('rules', 'requests_per_sec') / med('echo', 'requests_per_sec'):.2f}x "
      f"(per-round ratios {ratios[0]:.2f}–{ratios[-1]:.2f}; target ≥ 0.8)")
PY
