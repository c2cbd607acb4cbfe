#!/usr/bin/env bash
# Benchmark: put and get of a large file through sockit's object-store
# root (`sockit serve --root s3://...` with sockit's client) side by side
# with a plain S3 client driving the same S3 server directly
# (examples/s3_copy.rs: object_store's multipart upload, 16 MiB parts, 3 in
# flight; one streamed GET). The server is s3s-fs, over a folder in
# /dev/shm so the disk's page-cache noise stays out of both.
#
# Each round rotates who goes first. Reports medians, the spread and the
# ratio of throughputs (sockit ÷ plain client).
#
#   scripts/bench-object-store.sh [SIZE_MIB=1024] [ROUNDS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-1024}"
rounds="${2:-5}"

command -v s3s-fs >/dev/null || cargo install --locked s3s-fs --version 0.14.1 --features binary
cargo build --release --locked -q
cargo build --release --locked -q --example s3_copy
sockit="$PWD/target/release/sockit"
copy="$PWD/target/release/examples/s3_copy"
work=$(mktemp -d /dev/shm/sockit-bench-s3.XXXXXX)
mkdir -p "$work"/{s3/bench,src,dl,cfg}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

src="$work/src/payload.bin"
echo "making a ${size_mib} MiB file..."
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$src"
bytes=$(stat -c %s "$src")

RUST_LOG=info NO_COLOR=1 s3s-fs --host 127.0.0.1 --port 0 --access-key bench --secret-key bench-secret \
  "$work/s3" > "$work/s3.log" 2>&1 &
pids+=($!)
for _ in $(seq 400); do grep -q 'server is running at' "$work/s3.log" && break; sleep 0.025; done
export AWS_ENDPOINT
AWS_ENDPOINT=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/s3.log" | head -1)
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_ALLOW_HTTP=true AWS_REGION=us-east-1
export XDG_CONFIG_HOME="$work/cfg"

"$sockit" serve --listen 127.0.0.1:0 --insecure-no-auth --root s3://bench/sockit > "$work/serve.out" 2> "$work/serve.err" &
srv_pid=$!
pids+=("$srv_pid")
for _ in $(seq 400); do grep -q '^listening on' "$work/serve.out" 2>/dev/null && break; sleep 0.025; done
addr=$(sed -n 's/^listening on tcp \([^ ]*\).*/\1/p' "$work/serve.out" | head -1)
S() { "$sockit" "$@" --insecure-no-auth --server "$addr"; }

now() { date +%s.%N; }
results="$work/results.tsv"
: > "$results"
record() { echo -e "$1\t$2\t$(python3 -c "print($3 - $4)")" >> "$results"; }

put_with() {
  case "$1" in
    sockit) t0=$(now); S put "$src" up.bin > /dev/null; t1=$(now) ;;
    plain) t0=$(now); "$copy" put "$src" s3://bench/plain/up.bin; t1=$(now) ;;
  esac
  record put "$1" "$t1" "$t0"
}

get_with() {
  case "$1" in
    sockit) t0=$(now); S get up.bin -o "$work/dl/sockit.bin" > /dev/null; t1=$(now) ;;
    plain) t0=$(now); "$copy" get s3://bench/plain/up.bin "$work/dl/plain.bin"; t1=$(now) ;;
  esac
  record get "$1" "$t1" "$t0"
  cmp -s "$src" "$work/dl/$1.bin" || { echo "$1 downloaded different bytes" >&2; exit 1; }
  rm -f "$work/dl/$1.bin"
}

contenders=(sockit plain)
for round in $(seq "$rounds"); do
  order=("${contenders[$((round % 2))]}" "${contenders[$(((round + 1) % 2))]}")
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
print(f"\n{size / 2**20:.0f} MiB through s3s-fs on loopback, median of {rounds} rotated rounds\n")
print("| op | contender | median s | min-max s | MB/s | sockit ÷ this (throughput) |")
print("|---|---|---|---|---|---|")
for op in ("put", "get"):
    base = statistics.median(t[(op, "sockit")])
    for who in ("sockit", "plain"):
        v = t[(op, who)]
        m = statistics.median(v)
        print(f"| {op} | {who} | {m:.3f} | {min(v):.3f}-{max(v):.3f} | {size / m / 1e6:,.0f} | {m / base:.2f}x |")
print(f"\nsockit server peak RSS (VmHWM): {peak / 1024:.1f} MiB")
PY
