#!/usr/bin/env bash
# Benchmark: TCP echo, 64-byte request/response, side by side in one run:
#   sockit    - `sockit echo serve` (the full service layer; auth off, as the
#               baselines have none)
#   tokio     - examples/minimal_echo.rs, the smallest tokio echo server
#   asyncio   - benches/echo_asyncio.py
#   threads   - benches/echo_threads.py (socketserver.ThreadingTCPServer)
# at C = 10, 100, 1000 connections, the servers taking turns within each
# round. The load generator is `sockit bench echo`. Reports medians of
# requests/s and p99, and the ratios the targets are stated in.
#
# Then scale, against sockit alone: 19,000 idle connections (server RSS
# growth per connection; an honest client's p99 with and without them),
# and a burst of 1,000 connects with 200 in flight.
#
#   scripts/bench-echo.sh [SECONDS_PER_RUN=4] [ROUNDS=3] [IDLE=19000]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-4}"
rounds="${2:-3}"
idle="${3:-19000}"

cargo build --release --locked -q
cargo build --release --locked -q --example minimal_echo
sockit="$PWD/target/release/sockit"
work="$PWD/target/bench-echo"
rm -rf "$work"; mkdir -p "$work"
# sockit and the idle holder each need ~19,000 fds (hard limit here: 20,000).
ulimit -n "$(ulimit -Hn)"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start() { # name, command...; waits for its "listening on ADDR" line
  local name=$1; shift
  "$@" > "$work/$name.out" 2> "$work/$name.err" &
  pids+=($!)
  eval "${name}_pid=$!"
  for _ in $(seq 400); do grep -q '^listening on' "$work/$name.out" 2>/dev/null && break; sleep 0.025; done
  local addr
  addr=$(sed -n 's/^listening on \(tcp \)\{0,1\}\([^ ]*\).*/\2/p' "$work/$name.out" | head -1)
  [ -n "$addr" ] || { echo "$name did not start" >&2; cat "$work/$name.err" >&2; exit 1; }
  eval "${name}_addr=$addr"
}

export XDG_CONFIG_HOME="$work/cfg"
start sockit "$sockit" echo serve --tcp 127.0.0.1:0 --insecure-no-auth --max-connections 19500 --backlog 1024
start tokio target/release/examples/minimal_echo 127.0.0.1:0
start asyncio python3 benches/echo_asyncio.py 127.0.0.1:0
start threads python3 benches/echo_threads.py 127.0.0.1:0

load() { # addr, connections -> one JSON line
  "$sockit" bench echo "$1" --connections "$2" --duration "$secs" --json --insecure-no-auth
}

results="$work/results.jsonl"
: > "$results"
order=(sockit tokio asyncio threads)
for round in $(seq "$rounds"); do
  for c in 10 100 1000; do
    for name in "${order[@]}"; do
      addr_var="${name}_addr"
      line=$(load "${!addr_var}" "$c")
      echo "{\"server\":\"$name\",\"round\":$round,\"report\":$line}" >> "$results"
    done
    order=("${order[@]:1}" "${order[0]}")   # rotate who goes first
  done
  echo "round $round/$rounds done" >&2
done

# --- scale: idle connections, against sockit alone ---
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
honest() { "$sockit" bench echo "$sockit_addr" --connections 1 --duration "$secs" --json --insecure-no-auth; }
quiet_before=$(honest)
rss_before=$(rss_kib "$sockit_pid")
mkfifo "$work/hold"
"$sockit" bench idle "$sockit_addr" --connections "$idle" --hold 600 --insecure-no-auth \
  < "$work/hold" > "$work/idle.out" 2> "$work/idle.err" &
idle_pid=$!; pids+=("$idle_pid")
exec 3> "$work/hold"
for _ in $(seq 1200); do grep -q '^holding' "$work/idle.out" 2>/dev/null && break; sleep 0.1; done
held=$(sed -n 's/^holding //p' "$work/idle.out")
sleep 1   # let the server finish accepting what the client opened
rss_during=$(rss_kib "$sockit_pid")
loaded=$(honest)
exec 3>&-          # closing stdin releases the idle connections
wait "$idle_pid" || true

burst=$("$sockit" bench echo "$sockit_addr" --connections 1000 --connect-parallelism 200 --duration 1 --json --insecure-no-auth)

python3 - "$results" "$secs" "$rounds" "$quiet_before" "$loaded" "$rss_before" "$rss_during" "${held:-0}" "$idle" "$burst" <<'PY'
import json, statistics, sys
path, secs, rounds = sys.argv[1], sys.argv[2], sys.argv[3]
quiet, loaded = json.loads(sys.argv[4]), json.loads(sys.argv[5])
rss_before, rss_during, held, idle = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
burst = json.loads(sys.argv[10])
runs = {}
for line in open(path):
    r = json.loads(line)
    runs.setdefault((r["server"], r["report"]["connections"]), []).append(r["report"])
def med(server, c, key):
    return statistics.median(x[key] for x in runs[(server, c)])
print(f"\nTCP echo, 64-byte messages, {secs} s per run, median of {rounds} rounds\n")
print("| C | server | req/s | p99 µs | errors |")
print("|---|---|---|---|---|")
for c in (10, 100, 1000):
    for s in ("sockit", "tokio", "asyncio", "threads"):
        errs = sum(x["errors"] for x in runs[(s, c)])
        print(f"| {c} | {s} | {med(s, c, 'requests_per_sec'):,.0f} | {med(s, c, 'p99_us'):,.0f} | {errs} |")
print("\n| C | sockit ÷ tokio (target ≥ 0.95) | sockit ÷ asyncio (target ≥ 2 at C=1000) | sockit ÷ threads |")
print("|---|---|---|---|")
for c in (10, 100, 1000):
    s = med("sockit", c, "requests_per_sec")
    print(f"| {c} | {s / med('tokio', c, 'requests_per_sec'):.2f}x | {s / med('asyncio', c, 'requests_per_sec'):.2f}x | {s / med('threads', c, 'requests_per_sec'):.2f}x |")
growth = (rss_during - rss_before) / max(held, 1)
print(f"\nIdle scale: {held} of {idle} idle connections held; server RSS {rss_before/1024:.1f} MiB → {rss_during/1024:.1f} MiB,"
      f" {growth:.2f} KiB per connection (target ≤ 2)")
print(f"Honest client p99: {quiet['p99_us']} µs alone, {loaded['p99_us']} µs beside the idle connections"
      f" ({loaded['p99_us'] / max(quiet['p99_us'], 1):.2f}x; target ≤ 2x)")
print(f"Burst: 1,000 connects, 200 in flight: {burst['connect_failures']} failed, all open in {burst['connect_seconds']:.2f} s")
PY
