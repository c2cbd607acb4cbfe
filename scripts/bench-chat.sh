#!/usr/bin/env bash
# Benchmark: chat room fan-out, side by side in one run: `sockit chat serve`
# against `ncat --broker` and against the ceiling, a minimal relay that
# passes whole lines to every other member and does nothing else
# (examples/minimal_relay.rs), all fed the same load by `sockit bench chat`.
#
# M members join (one at a time: ncat --broker loses some of many
# simultaneous connections, which would count against it as lost lines),
# and S of them send lines at a fixed total rate for SECS seconds. Every
# member counts what reaches it and how late. Each server is run at a
# ladder of rates; its result is the highest deliveries/s (summed over
# members) of a run that lost nothing, the throughput of RFC 2544: a relay
# that drops lines cannot look fast. Reports the medians over ROUNDS and
# their ratios.
#
#   scripts/bench-chat.sh [ROUNDS=3] [MEMBERS=1000] [SENDERS=10] [SECS=3] [RATES="4000 8000 16000 24000 32000 48000"]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
members="${2:-1000}"
senders="${3:-10}"
secs="${4:-3}"
rates="${5:-4000 8000 16000 24000 32000 48000}"

cargo build --release --locked -q
cargo build --release --locked -q --example minimal_relay
sockit="$PWD/target/release/sockit"
relay="$PWD/target/release/examples/minimal_relay"
work="$PWD/target/bench-chat"
rm -rf "$work"; mkdir -p "$work"
ulimit -n "$(ulimit -Hn)"
export XDG_CONFIG_HOME="$work/cfg"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$sockit" chat serve --listen 127.0.0.1:0 --insecure-no-auth --max-per-peer $((members + 100)) > "$work/sockit.out" 2> "$work/sockit.err" &
pids+=($!)
for _ in $(seq 200); do grep -q '^listening on' "$work/sockit.out" 2>/dev/null && break; sleep 0.025; done
sockit_addr=$(sed -n 's/^listening on tcp \([^ ]*\).*/\1/p' "$work/sockit.out")
"$relay" 127.0.0.1:0 > "$work/relay.out" &
pids+=($!)
for _ in $(seq 200); do grep -q '^listening on' "$work/relay.out" 2>/dev/null && break; sleep 0.025; done
relay_addr=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$work/relay.out")
ncat_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# ncat's stdin must stay open: at EOF it accepts about one connection per
# 10 ms. A FIFO opened read-write never reaches EOF.
mkfifo "$work/ncat.in"
exec 3<>"$work/ncat.in"
ncat -l --broker --max-conns $((members + 100)) 127.0.0.1 "$ncat_port" <&3 > /dev/null 2> "$work/ncat.err" &
pids+=($!)
for _ in $(seq 200); do ss -ltn "sport = :$ncat_port" | grep -q LISTEN && break; sleep 0.025; done

# shellcheck source=scripts/bench-chat-ladder.sh
. scripts/bench-chat-ladder.sh
chat_ladder relay "$relay_addr" sockit "$sockit_addr" ncat "127.0.0.1:$ncat_port"
python3 -c "
s, r, n = ${median_of[sockit]}, ${median_of[relay]}, ${median_of[ncat]}
print(f'  sockit / ceiling (minimal relay): {s / max(r, 1):.2f}x')
print(f'  sockit / ncat --broker:           {s / max(n, 1):.2f}x')"
