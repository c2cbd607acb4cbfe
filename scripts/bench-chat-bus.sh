#!/usr/bin/env bash
# Benchmark: one chat room on three servers over NATS against the same
# room on one server, side by side in one run, fed the same load by
# `sockit bench chat` (members spread over the servers in turn).
#
# Three contenders, rotated in order each round: `one` (a server, no bus),
# `one-bus` (a server on the bus: what the bus costs) and `three-bus`
# (three servers on the bus, a third of the members each). For each, a
# ladder of rates; its result is the highest deliveries/s of a run that
# lost nothing (RFC 2544's throughput). Everything runs on this machine,
# nats-server included, so this measures the cost of the bus, not the
# capacity three machines would have (docs/scale.md).
#
#   scripts/bench-chat-bus.sh [ROUNDS=3] [MEMBERS=999] [SENDERS=9] [SECS=3] [RATES="2000 4000 8000 16000 24000"]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
members="${2:-999}"
senders="${3:-9}"
secs="${4:-3}"
rates="${5:-2000 4000 8000 16000 24000}"

cargo build --release --locked -q
sockit="$PWD/target/release/sockit"
work="$PWD/target/bench-chat-bus"
rm -rf "$work"; mkdir -p "$work"
ulimit -n "$(ulimit -Hn)"
export XDG_CONFIG_HOME="$work/cfg"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

nats-server -a 127.0.0.1 -p -1 -js -sd "$work/nats" 2> "$work/nats.log" &
pids+=($!)
for _ in $(seq 200); do grep -q 'Listening for client connections' "$work/nats.log" && break; sleep 0.025; done
bus="nats://$(sed -n 's/.*Listening for client connections on \(.*\)$/\1/p' "$work/nats.log")"

start() { # name [flags...] -> the server's address, once it listens
  local name=$1; shift
  "$sockit" chat serve --listen 127.0.0.1:0 --insecure-no-auth --max-per-peer $((members + 100)) "$@" \
    > "$work/$name.out" 2> "$work/$name.err" &
  pids+=($!)
  for _ in $(seq 400); do grep -q '^listening on' "$work/$name.out" 2>/dev/null && break; sleep 0.025; done
  sed -n 's/^listening on tcp \([^ ]*\).*/\1/p' "$work/$name.out"
}
one=$(start one)
one_bus=$(start one-bus --bus "$bus" --room solo)
three_bus="$(start a --bus "$bus" --room trio) $(start b --bus "$bus" --room trio) $(start c --bus "$bus" --room trio)"

# shellcheck source=scripts/bench-chat-ladder.sh
. scripts/bench-chat-ladder.sh
chat_ladder one "$one" one-bus "$one_bus" three-bus "$three_bus"
python3 -c "
o, ob, t = ${median_of[one]}, ${median_of[one-bus]}, ${median_of[three-bus]}
print(f'  one server on the bus / one alone:    {ob / max(o, 1):.2f}x')
print(f'  three servers on the bus / one alone: {t / max(o, 1):.2f}x')"
