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

run() { # "addrs" rate -> "deliveries/s p99_us missing"
  local per_sender=$(( $2 * secs / senders ))
  # shellcheck disable=SC2086
  "$sockit" bench chat $1 --members "$members" --senders "$senders" --messages "$per_sender" \
    --rate "$2" --drain 5 --connect-parallelism 1 --insecure-no-auth --json 2>/dev/null \
    | python3 -c 'import json,sys; r=json.loads(sys.stdin.readline()); print("%.0f %d %d" % (r["deliveries_per_sec"], r["p99_us"], r["missing"] + r["unsynced"]))' \
    || echo "0 0 -1"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "$members members, $senders senders, ${secs}s per rate, rates (lines/s): $rates"
printf '%-6s %-10s %7s %14s %10s %10s\n' round setup rate deliveries/s p99_ms missing
setups=(one one-bus three-bus)
declare -A best_of addr_of=([one]="$one" [one-bus]="$one_bus" [three-bus]="$three_bus")
for who in "${setups[@]}"; do best_of[$who]=""; done
for round in $(seq "$rounds"); do
  declare -A best=([one]=0 [one-bus]=0 [three-bus]=0)
  for rate in $rates; do
    shift_by=$(( (round - 1) % ${#setups[@]} ))
    order=("${setups[@]:shift_by}" "${setups[@]:0:shift_by}")
    for who in "${order[@]}"; do
      read -r rate_got p99 missing < <(run "${addr_of[$who]}" "$rate")
      printf '%-6s %-10s %7s %14s %10s %10s\n' "$round" "$who" "$rate" "$rate_got" "$((p99 / 1000))" "$missing"
      if [ "$missing" = 0 ]; then
        best[$who]=$(python3 -c "print(max(${best[$who]}, $rate_got))")
      fi
    done
  done
  for who in "${setups[@]}"; do best_of[$who]="${best_of[$who]} ${best[$who]}"; done
done
echo
echo "highest lossless deliveries/s, median of $rounds rounds:"
for who in "${setups[@]}"; do
  # shellcheck disable=SC2086
  printf '  %-10s %12s   rounds:%s\n' "$who" "$(median ${best_of[$who]})" "${best_of[$who]}"
done
# shellcheck disable=SC2086
python3 -c "
o, ob, t = $(median ${best_of[one]}), $(median ${best_of[one-bus]}), $(median ${best_of[three-bus]})
print(f'  one server on the bus / one alone:   {ob / max(o, 1):.2f}x')
print(f'  three servers on the bus / one alone: {t / max(o, 1):.2f}x')"
