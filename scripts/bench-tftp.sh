#!/usr/bin/env bash
# Benchmark: a 64 MiB TFTP download over loopback, side by side in one run.
#   1. Server: sockit vs tftpd-hpa, the same client (curl) for both, at
#      blksize 512 and 1468 (lock-step: round-trip bound).
#   2. Client and server together, windowsize 16: sockit + sockit vs
#      atftp + atftpd, at blksize 1468 and 65464.
#   3. sockit's --single-port mode against its usual port per transfer,
#      with curl (lock-step) and sockit's client (windowsize 16).
# Each round runs both contenders, and who goes first alternates from one
# round to the next (order effects are as large as the differences). Every process is pinned to
# the same CPU (taskset -c $CPU): on these VMs a lock-step transfer is
# bound by cross-CPU wake-ups, and unpinned runs vary tenfold. Received
# data goes to /dev/null so the page cache stays out of it.
# Reports median MB/s per contender, the ratio of medians, and the range
# of the per-round ratios.
#
#   scripts/bench-tftp.sh [ROUNDS=5] [SIZE_MIB=64] [CPU=1]
#
# Needs root (tftpd-hpa and atftpd drop to nobody), tftpd-hpa, curl and
# atftp installed, and atftpd unpacked (scripts/test.sh does all of that).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
size="${2:-64}"
cpu="${3:-1}"

cargo build --release --locked -q
sockit="$PWD/target/release/sockit"
atftpd="$PWD/target/peers/atftpd/usr/sbin/atftpd"
work="$PWD/target/bench-tftp"
rm -rf "$work"; mkdir -p "$work/root"
chmod 777 "$work/root"
head -c "$((size * 1024 * 1024))" /dev/urandom > "$work/root/f.bin"
chmod 644 "$work/root/f.bin"
bytes=$((size * 1024 * 1024))
pin=(taskset -c "$cpu")

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# sockit announces its port; the others get a port that was just free.
"${pin[@]}" "$sockit" tftp serve --listen 127.0.0.1:0 --root "$work/root" > "$work/sockit.out" 2> "$work/sockit.err" &
pids+=($!)
for _ in $(seq 200); do grep -q '^listening on' "$work/sockit.out" 2>/dev/null && break; sleep 0.025; done
sockit_port=$(sed -n 's/^listening on udp 127.0.0.1:\([0-9]*\).*/\1/p' "$work/sockit.out")
"${pin[@]}" "$sockit" tftp serve --listen 127.0.0.1:0 --root "$work/root" --single-port > "$work/single.out" 2> "$work/single.err" &
pids+=($!)
for _ in $(seq 200); do grep -q '^listening on' "$work/single.out" 2>/dev/null && break; sleep 0.025; done
single_port=$(sed -n 's/^listening on udp 127.0.0.1:\([0-9]*\).*/\1/p' "$work/single.out")
hpa_port=$(free_port)
"${pin[@]}" in.tftpd -L -a "127.0.0.1:$hpa_port" -s -u nobody -B 65464 "$work/root" &
pids+=($!)
atftpd_port=$(free_port)
"${pin[@]}" "$atftpd" --daemon --no-fork --port "$atftpd_port" --bind-address 127.0.0.1 \
  --user nobody --group nogroup --logfile /dev/null "$work/root" &
pids+=($!)
sleep 0.5  # the two daemons print nothing to wait on

# Prints the MB/s of one run of the command (stdout and stderr discarded).
rate() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > /dev/null 2>&1 || { echo "failed: $*" >&2; echo 0; return; }
  t1=$(date +%s.%N)
  python3 -c "print(f'{$bytes / ($t1 - $t0) / 1e6:.1f}')"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}' if $2 > 0 else 'n/a')"; }

compare() { # label, name A, name B, then A's and B's commands split by --
  local label=$1 a=$2 b=$3; shift 3
  local cmd_a=() cmd_b=()
  while [ "$1" != -- ]; do cmd_a+=("$1"); shift; done; shift
  cmd_b=("$@")
  local ra=() rb=() rr=() x y
  for i in $(seq "$rounds"); do
    if [ $((i % 2)) -eq 1 ]; then
      x=$(rate "${cmd_a[@]}"); y=$(rate "${cmd_b[@]}")
    else
      y=$(rate "${cmd_b[@]}"); x=$(rate "${cmd_a[@]}")
    fi
    ra+=("$x"); rb+=("$y"); rr+=("$(ratio "$x" "$y")")
  done
  local ma mb spread
  ma=$(median "${ra[@]}"); mb=$(median "${rb[@]}")
  spread=$(printf '%s\n' "${rr[@]}" | sort -g | sed -n '1p;$p' | paste -sd- -)
  printf '%-34s %-22s %8s MB/s   %-22s %8s MB/s   ratio %s (rounds %s)\n' \
    "$label" "$a" "$ma" "$b" "$mb" "$(ratio "$ma" "$mb")" "$spread"
  echo "    runs: $a ${ra[*]} | $b ${rb[*]}" >&2
}

echo "64 MiB get over loopback, pinned to CPU $cpu, $rounds rounds, medians:"
for blk in 512 1468; do
  compare "server, curl client, blksize $blk" "sockit" "tftpd-hpa" \
    "${pin[@]}" curl -sS --tftp-blksize "$blk" -o /dev/null "tftp://127.0.0.1:$sockit_port/f.bin" -- \
    "${pin[@]}" curl -sS --tftp-blksize "$blk" -o /dev/null "tftp://127.0.0.1:$hpa_port/f.bin"
done
for blk in 1468 65464; do
  compare "client+server, windowsize 16, $blk" "sockit+sockit" "atftp+atftpd" \
    "${pin[@]}" "$sockit" tftp get "127.0.0.1:$sockit_port" f.bin /dev/null --blksize "$blk" --windowsize 16 -- \
    "${pin[@]}" atftp --option "blksize $blk" --option "windowsize 16" -g -r f.bin -l /dev/null 127.0.0.1 "$atftpd_port"
done
for blk in 512 1468; do
  compare "single-port, curl, blksize $blk" "sockit --single-port" "sockit" \
    "${pin[@]}" curl -sS --tftp-blksize "$blk" -o /dev/null "tftp://127.0.0.1:$single_port/f.bin" -- \
    "${pin[@]}" curl -sS --tftp-blksize "$blk" -o /dev/null "tftp://127.0.0.1:$sockit_port/f.bin"
done
compare "single-port, windowsize 16, 1468" "sockit --single-port" "sockit" \
  "${pin[@]}" "$sockit" tftp get "127.0.0.1:$single_port" f.bin /dev/null --blksize 1468 --windowsize 16 -- \
  "${pin[@]}" "$sockit" tftp get "127.0.0.1:$sockit_port" f.bin /dev/null --blksize 1468 --windowsize 16
