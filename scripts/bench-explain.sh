#!/usr/bin/env bash
# Benchmark: `sockit explain` against tshark reading the same capture.
#   1. A 1 GiB framed put over loopback (large segments, ~50k packets).
#   2. A 64 MiB TFTP download at blksize 512, lock-step (~260k small packets).
# Each capture is recorded once by `sockit lab capture` (tcpdump) inside a
# network namespace of this script's own, so nothing else gets in. Then
# each round runs both readers on the warm file, output to /dev/null,
# alternating who goes first. Reports the median seconds of each, the ratio
# of medians (sockit / tshark; lower is faster) and the per-round range.
#
#   scripts/bench-explain.sh [ROUNDS=5] [PUT_MIB=1024] [TFTP_MIB=64]
#
# Needs root (namespaces, tcpdump), tcpdump and tshark (scripts/test.sh
# installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
put_mib="${2:-1024}"
tftp_mib="${3:-64}"

cargo build --release --locked -q
sockit="$PWD/target/release/sockit"
work="$PWD/target/bench-explain"
rm -rf "$work"; mkdir -p "$work/root" "$work/home"
ns="skbench-$$"
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
# Always called in a subshell (a background job or `( )`), which it replaces,
# so a background job's $! is the server itself.
in_ns() { exec ip netns exec "$ns" env HOME="$work/home" XDG_CONFIG_HOME="$work/home" SOCKIT_LOG=warn "$@"; }
announced() {  # FILE: wait for a server's "listening on" line, print ADDR
  for _ in $(seq 400); do grep -q '^listening on' "$1" 2>/dev/null && break; sleep 0.025; done
  sed -n 's/^listening on [a-z]* \([^ ]*\).*/\1/p' "$1" | head -1
}

head -c "$((put_mib * 1024 * 1024))" /dev/urandom > "$work/put.bin"
head -c "$((tftp_mib * 1024 * 1024))" /dev/urandom > "$work/root/fw.bin"

in_ns "$sockit" serve --listen 127.0.0.1:0 --no-web --root "$work/root" > "$work/serve.out" 2>&1 &
pids+=($!)
files=$(announced "$work/serve.out")
in_ns "$sockit" tftp serve --listen 127.0.0.1:0 --root "$work/root" > "$work/tftp.out" 2>&1 &
pids+=($!)
tftp=$(announced "$work/tftp.out")

(cd "$work" && in_ns "$sockit" lab capture -o put.pcap --filter tcp -- "$sockit" put "$files" put.bin >/dev/null)
(cd "$work" && in_ns "$sockit" lab capture -o tftp.pcap --filter udp -- "$sockit" tftp get "$tftp" fw.bin /dev/null --blksize 512 >/dev/null)

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
timed() { local t0 t1; t0=$(date +%s.%N); "$@" > /dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }

for capture in put tftp; do
  file="$work/$capture.pcap"
  cat "$file" > /dev/null  # warm: both readers read from the page cache
  packets=$(tshark -r "$file" 2>/dev/null | wc -l)
  : > "$work/s.txt"; : > "$work/t.txt"; : > "$work/r.txt"
  for round in $(seq "$rounds"); do
    if (( round % 2 )); then
      s=$(timed "$sockit" explain "$file"); t=$(timed tshark -n -r "$file")
    else
      t=$(timed tshark -n -r "$file"); s=$(timed "$sockit" explain "$file")
    fi
    echo "$s" >> "$work/s.txt"; echo "$t" >> "$work/t.txt"
    echo "$s / $t" | bc -l >> "$work/r.txt"
  done
  ms=$(median < "$work/s.txt"); mt=$(median < "$work/t.txt")
  lo=$(sort -n "$work/r.txt" | head -1); hi=$(sort -n "$work/r.txt" | tail -1)
  printf '%-5s %s, %d packets: sockit explain %.2f s, tshark %.2f s, ratio %.2fx (rounds %.2f-%.2f)\n' \
    "$capture" "$(du -h "$file" | cut -f1)" "$packets" "$ms" "$mt" "$(echo "$ms / $mt" | bc -l)" "$lo" "$hi"
done
