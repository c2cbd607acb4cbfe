#!/usr/bin/env bash
# Benchmark: what --fsync and --tls cost, side by side in one run.
#   big:   one put of SIZE_MIB MiB
#   small: put -r of a folder of FILES files of 8 KiB
# against three servers started once each: plain, --fsync, --tls (the
# client adds --tls for that one). Every round runs all three, in an
# order that rotates each round (order effects are larger than the
# differences measured). Reports medians and each variant's time divided
# by plain's, with the spread (min-max of the per-round ratios).
#
#   scripts/bench-durability.sh [ROUNDS=7] [SIZE_MIB=256] [FILES=500]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-7}"
size_mib="${2:-256}"
files="${3:-500}"

cargo build --release --locked -q
sockit="$PWD/target/release/sockit"
work="$PWD/target/bench-durability"
rm -rf "$work"; mkdir -p "$work"/{cfg,src/tree}
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/src/big.bin"
for i in $(seq "$files"); do head -c 8192 /dev/urandom > "$work/src/tree/f$i"; done
export XDG_CONFIG_HOME="$work/cfg"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

declare -A addr flags
start() { # name, extra server flags...
  local name=$1; shift
  mkdir -p "$work/root-$name"
  "$sockit" serve --listen 127.0.0.1:0 --root "$work/root-$name" "$@" > "$work/$name.out" 2> "$work/$name.err" &
  pids+=($!)
  for _ in $(seq 400); do grep -q '^listening on' "$work/$name.out" 2>/dev/null && break; sleep 0.025; done
  addr[$name]=$(sed -n 's/^listening on tcp \([^ ]*\).*/\1/p' "$work/$name.out")
}
start plain
start fsync --fsync
start tls --tls
flags[plain]=""; flags[fsync]=""; flags[tls]="--tls"

now() { date +%s.%N; }
# Seconds for one run of: kind (big|small), variant.
run() {
  local kind=$1 v=$2 t0 t1
  sync
  t0=$(now)
  if [ "$kind" = big ]; then
    "$sockit" put "$work/src/big.bin" "big-$RANDOM.bin" -s "${addr[$v]}" ${flags[$v]} > /dev/null
  else
    "$sockit" put -r "$work/src/tree" "tree-$RANDOM" -s "${addr[$v]}" ${flags[$v]} > /dev/null
  fi
  t1=$(now)
  python3 -c "print($t1 - $t0)"
}

variants=(plain fsync tls)
declare -A times
for r in $(seq "$rounds"); do
  for kind in big small; do
    for k in 0 1 2; do
      v=${variants[$(( (k + r) % 3 ))]}
      times[$kind,$v]+="$(run "$kind" "$v") "
    done
  done
  rm -rf "$work"/root-*/*
done

python3 - "$rounds" "$size_mib" "$files" <<PY
import statistics, sys
rounds, size, files = sys.argv[1:]
t = {}
$(for kind in big small; do for v in plain fsync tls; do echo "t[('$kind','$v')] = [float(x) for x in '${times[$kind,$v]}'.split()]"; done; done)
print(f"{rounds} rounds; big = one {size} MiB put, small = put -r of {files} files of 8 KiB")
print("| load | variant | median s | ÷ plain (median of per-round ratios) | spread |")
print("|---|---|---|---|---|")
for kind in ("big", "small"):
    base = t[(kind, "plain")]
    for v in ("plain", "fsync", "tls"):
        xs = t[(kind, v)]
        ratios = [a / b for a, b in zip(xs, base)]
        print(f"| {kind} | {v} | {statistics.median(xs):.3f} | {statistics.median(ratios):.2f}x | {min(ratios):.2f}-{max(ratios):.2f} |")
PY
