#!/usr/bin/env bash
# Benchmark: chat room fan-out, side by side in one run: `sockit chat serve`
# against `ncat --broker`, fed the same load by `sockit bench chat`:
# M members join, S of them send N lines each as fast as the server takes
# them, and every member counts the lines that reach it (and how late).
# Reports medians of deliveries/s (summed over members), p99 latency and
# missing deliveries, and the ratio of the deliveries/s medians.
#
#   scripts/bench-chat.sh [ROUNDS=3] [MEMBERS=1000] [SENDERS=10] [LINES=200]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
members="${2:-1000}"
senders="${3:-10}"
lines="${4:-200}"

cargo build --release --locked -q
sockit="$PWD/target/release/sockit"
work="$PWD/target/bench-chat"
rm -rf "$work"; mkdir -p "$work"
ulimit -n "$(ulimit -Hn)"
export XDG_CONFIG_HOME="$work/cfg"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$sockit" chat serve --listen 127.0.0.1:0 --insecure-no-auth > "$work/sockit.out" 2> "$work/sockit.err" &
pids+=($!)
for _ in $(seq 200); do grep -q '^listening on' "$work/sockit.out" 2>/dev/null && break; sleep 0.025; done
sockit_addr=$(sed -n 's/^listening on tcp \([^ ]*\).*/\1/p' "$work/sockit.out")
ncat_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ncat -l --broker --max-conns $((members + 100)) 127.0.0.1 "$ncat_port" > /dev/null 2> "$work/ncat.err" &
pids+=($!)
sleep 0.5  # ncat prints nothing to wait on

run() { # addr -> "deliveries/s p99_us missing"
  "$sockit" bench chat "$1" --members "$members" --senders "$senders" --messages "$lines" \
    --drain 5 --insecure-no-auth --json 2>/dev/null \
    | python3 -c 'import json,sys; r=json.loads(sys.stdin.readline()); print("%.0f %d %d" % (r["deliveries_per_sec"], r["p99_us"], r["missing"]))' \
    || echo "0 0 -1"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

s_rate=(); s_p99=(); s_miss=(); n_rate=(); n_p99=(); n_miss=()
for _ in $(seq "$rounds"); do
  read -r a b c < <(run "$sockit_addr"); s_rate+=("$a"); s_p99+=("$b"); s_miss+=("$c")
  read -r a b c < <(run "127.0.0.1:$ncat_port"); n_rate+=("$a"); n_p99+=("$b"); n_miss+=("$c")
done
expected=$(( members * senders * lines - senders * lines ))
echo "$members members, $senders senders x $lines lines ($expected deliveries expected), $rounds rounds, medians:"
printf '  %-14s %10s deliveries/s  p99 %8s us  missing %s\n' sockit "$(median "${s_rate[@]}")" "$(median "${s_p99[@]}")" "${s_miss[*]}"
printf '  %-14s %10s deliveries/s  p99 %8s us  missing %s\n' "ncat --broker" "$(median "${n_rate[@]}")" "$(median "${n_p99[@]}")" "${n_miss[*]}"
python3 -c "print(f'  ratio (deliveries/s): {$(median "${s_rate[@]}") / max($(median "${n_rate[@]}"), 1):.2f}x')"
