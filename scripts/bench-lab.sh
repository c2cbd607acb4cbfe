#!/usr/bin/env bash
# Benchmark: the teaching lab's models.
#   1. The `async` and `epoll-et` models against the smallest tokio echo
#      server (examples/minimal_echo.rs), side by side: 64-byte echo at
#      C = 10, 100, 1000, the servers taking turns and the first one
#      rotating each load. Reports median req/s and p99 and the ratios.
#   2. `sockit lab compare` over every model at its defaults (C = 1, 10,
#      100, 1000 and max), writing the table, a CSV and the chart
#      (docs/lab-compare.svg and .png).
#
#   scripts/bench-lab.sh [SECONDS_PER_RUN=3] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-3}"
rounds="${2:-3}"

cargo build --release --locked -q
cargo build --release --locked -q --example minimal_echo
sockit="$PWD/target/release/sockit"
work="$PWD/target/bench-lab"
rm -rf "$work"; mkdir -p "$work"
ulimit -n "$(ulimit -Hn)"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start() { # name, command...; waits for its "listening on ADDR" line
  local name=$1; shift
  "$@" > "$work/$name.out" 2> "$work/$name.err" &
  pids+=($!)
  for _ in $(seq 400); do grep -q '^listening on' "$work/$name.out" 2>/dev/null && break; sleep 0.025; done
  local addr
  addr=$(sed -n 's/^listening on \(tcp \)\{0,1\}\([^ ]*\).*/\2/p' "$work/$name.out" | head -1)
  [ -n "$addr" ] || { echo "$name did not start" >&2; cat "$work/$name.err" >&2; exit 1; }
  eval "${name//-/_}_addr=$addr"
}

start async "$sockit" lab serve --model async --listen 127.0.0.1:0 --backlog 4096
start epoll-et "$sockit" lab serve --model epoll-et --listen 127.0.0.1:0 --backlog 4096
start tokio target/release/examples/minimal_echo 127.0.0.1:0

results="$work/results.jsonl"
: > "$results"
order=(async epoll-et tokio)
for round in $(seq "$rounds"); do
  for c in 10 100 1000; do
    for name in "${order[@]}"; do
      addr_var="${name//-/_}_addr"
      line=$("$sockit" bench echo "${!addr_var}" --connections "$c" --duration "$secs" --json --insecure-no-auth)
      echo "{\"server\":\"$name\",\"round\":$round,\"report\":$line}" >> "$results"
    done
    order=("${order[@]:1}" "${order[0]}")   # rotate who goes first
  done
  echo "round $round/$rounds done" >&2
done

python3 - "$results" "$secs" "$rounds" <<'PY'
import json, statistics, sys
path, secs, rounds = sys.argv[1:4]
runs = {}
for line in open(path):
    r = json.loads(line)
    runs.setdefault((r["server"], r["report"]["connections"]), []).append(r)
def med(s, c, key):
    return statistics.median(x["report"][key] for x in runs[(s, c)])
def ratios(s, c):
    # Per round: the model against tokio in the same round.
    by_round = {x["round"]: x["report"]["requests_per_sec"] for x in runs[("tokio", c)]}
    return [x["report"]["requests_per_sec"] / by_round[x["round"]] for x in runs[(s, c)]]
print(f"\nTCP echo, 64-byte messages, {secs} s per run, median of {rounds} rounds\n")
print("| C | server | req/s | p99 µs |")
print("|---|---|---|---|")
for c in (10, 100, 1000):
    for s in ("async", "epoll-et", "tokio"):
        print(f"| {c} | {s} | {med(s, c, 'requests_per_sec'):,.0f} | {med(s, c, 'p99_us'):,.0f} |")
print("\n| C | async ÷ tokio (target ≥ 0.95) | rounds | epoll-et ÷ tokio | rounds |")
print("|---|---|---|---|---|")
for c in (10, 100, 1000):
    t = med("tokio", c, "requests_per_sec")
    a, e = ratios("async", c), ratios("epoll-et", c)
    print(f"| {c} | {med('async', c, 'requests_per_sec') / t:.2f}x | {min(a):.2f}-{max(a):.2f} "
          f"| {med('epoll-et', c, 'requests_per_sec') / t:.2f}x | {min(e):.2f}-{max(e):.2f} |")
PY

cleanup; pids=()
echo >&2; echo "lab compare over every model (a few minutes)" >&2
"$sockit" lab compare --csv "$work/lab-compare.csv" --chart docs/lab-compare.svg --chart docs/lab-compare.png
