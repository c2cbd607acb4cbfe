#!/usr/bin/env bash
# Benchmark: put and get of a large file over loopback, sockit (verified,
# authenticated) side by side with two baselines in one run:
#   nc     - netcat-openbsd piping the same bytes into a file (no checks);
#   python - the programs written from the seed (tests/interop/seed_*.py).
# Each round rotates who goes first, so page-cache and neighbour noise hit
# every contender alike. Reports medians, the spread (min-max), the ratio
# sockit/baseline of throughput, and the sockit server's peak RSS.
#
#   scripts/bench-files.sh [SIZE_MIB=1024] [ROUNDS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-1024}"
rounds="${2:-5}"

if ! command -v nc.openbsd >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq netcat-openbsd; else
    echo "needs nc.openbsd (apt-get install netcat-openbsd)" >&2; exit 1; fi
fi
cargo build --release --locked -q
sockit="$PWD/target/release/sockit"
work="$PWD/target/bench-files"
rm -rf "$work"; mkdir -p "$work"/{src,srv,dl,py,cfg}
src="$work/src/payload.bin"
echo "making a ${size_mib} MiB file..."
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$src"
bytes=$(stat -c %s "$src")
cp "$src" "$work/srv/payload.bin"      # for downloads
cp "$src" "$work/py/payload.bin"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/key"
chmod 600 "$work/key"

# Each timed transfer starts with no dirty pages pending: otherwise the
# writeback of the previous contender's gigabyte throttles the next one.
now() { date +%s.%N; }
settle() { sync; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# sockit server, started once: authenticated, verified transfers.
XDG_CONFIG_HOME="$work/cfg" "$sockit" serve --listen 127.0.0.1:0 --root "$work/srv" \
  --key-file "$work/key" > "$work/serve.out" 2> "$work/serve.err" &
srv_pid=$!
python3 tests/interop/seed_server.py 127.0.0.1:0 "$work/py" > "$work/py.out" &
py_pid=$!
trap 'kill $srv_pid $py_pid 2>/dev/null || true' EXIT
for f in serve.out py.out; do
  for _ in $(seq 200); do [ -s "$work/$f" ] && break; sleep 0.05; done
done
addr=$(sed -n 's/^listening on tcp \([^ ]*\).*/\1/p' "$work/serve.out" | head -1)
py_addr=$(sed -n 's/^listening on //p' "$work/py.out" | head -1)
S() { XDG_CONFIG_HOME="$work/cfg" "$sockit" "$@" --server "$addr" --key-file "$work/key"; }

results="$work/results.tsv"
: > "$results"
record() { echo -e "$1\t$2\t$(python3 -c "print($3 - $4)")" >> "$results"; }

put_with() {
  case "$1" in
    sockit)
      settle
      t0=$(now); S put "$src" payload-up.bin > /dev/null; t1=$(now)
      record put sockit "$t1" "$t0"
      rm -f "$work/srv/payload-up.bin" ;;
    nc)
      port=$(free_port)
      nc.openbsd -l 127.0.0.1 "$port" > "$work/dl/nc-up.bin" & ncl=$!
      for _ in $(seq 200); do ss -ltn "sport = :$port" | grep -q LISTEN && break; sleep 0.01; done
      settle
      t0=$(now); nc.openbsd -N 127.0.0.1 "$port" < "$src"; wait $ncl; t1=$(now)
      record put nc "$t1" "$t0"
      rm -f "$work/dl/nc-up.bin" ;;
    python)
      settle
      lines_before=$(grep -c '^stored' "$work/py.out" || true)
      t0=$(now)
      python3 tests/interop/seed_client.py "${py_addr%:*}" "${py_addr##*:}" "$src" < /dev/null > /dev/null
      until [ "$(grep -c '^stored' "$work/py.out")" -gt "$lines_before" ]; do sleep 0.005; done
      t1=$(now)
      record put python "$t1" "$t0" ;;
  esac
}

get_with() {
  case "$1" in
    sockit)
      settle
      t0=$(now); S get payload.bin -o "$work/dl" > /dev/null; t1=$(now)
      record get sockit "$t1" "$t0"
      rm -f "$work/dl/payload.bin" ;;
    nc)
      port=$(free_port)
      nc.openbsd -N -l 127.0.0.1 "$port" < "$src" & ncl=$!
      for _ in $(seq 200); do ss -ltn "sport = :$port" | grep -q LISTEN && break; sleep 0.01; done
      settle
      t0=$(now); nc.openbsd 127.0.0.1 "$port" > "$work/dl/nc-down.bin"; wait $ncl; t1=$(now)
      record get nc "$t1" "$t0"
      rm -f "$work/dl/nc-down.bin" ;;
    python)
      settle
      t0=$(now)
      python3 tests/interop/seed_client.py "${py_addr%:*}" "${py_addr##*:}" payload.bin \
        --get-into "$work/dl/py-down.bin" < /dev/null
      t1=$(now)
      record get python "$t1" "$t0"
      rm -f "$work/dl/py-down.bin" ;;
  esac
}

# Each round starts with a different contender: whoever runs right after
# a write of a gigabyte pays for its writeback, so a fixed order measures
# the order.
contenders=(sockit nc python)
for round in $(seq "$rounds"); do
  order=()
  for i in 0 1 2; do order+=("${contenders[$(((i + round) % 3))]}"); done
  echo "round $round/$rounds: ${order[*]}"
  for who in "${order[@]}"; do put_with "$who"; done
  for who in "${order[@]}"; do get_with "$who"; done
done

peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$srv_pid/status")
python3 - "$results" "$bytes" "$peak_kib" "$rounds" <<'PY'
import statistics, sys
path, size, peak, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t = {}
for line in open(path):
    op, who, secs = line.split("\t")
    t.setdefault((op, who), []).append(float(secs))
print(f"\n{size / 2**20:.0f} MiB over loopback, median of {rounds} rotated rounds\n")
print("| op | contender | median s | min-max s | MB/s | sockit ÷ this (throughput) |")
print("|---|---|---|---|---|---|")
for op in ("put", "get"):
    base = statistics.median(t[(op, "sockit")])
    for who in ("sockit", "nc", "python"):
        v = t[(op, who)]
        m = statistics.median(v)
        print(f"| {op} | {who} | {m:.3f} | {min(v):.3f}-{max(v):.3f} | {size / m / 1e6:,.0f} | {m / base:.2f}x |")
print(f"\nsockit server peak RSS (VmHWM): {peak / 1024:.1f} MiB")
PY
