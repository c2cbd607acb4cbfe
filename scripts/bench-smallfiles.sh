#!/usr/bin/env bash
# Benchmark: a tree of many small files up and down over loopback, side by
# side in one run:
#   sockit  - `sockit put -r` / `get -r` (verified with xxh3, no auth)
#   rsync   - an rsync daemon, push (`rsync -a src rsync://...`) and pull
#   tar|nc  - `tar c | nc -N` into `nc -l | tar x` (no checks: the ceiling)
# The tree: 50 folders of 100 files of 100 B to 8 KiB (about 20 MiB),
# generated with a fixed seed. Every timed run starts after a `sync` with
# no destination; each round rotates who goes first (order effects here
# are larger than the differences measured). Reports medians, the spread
# (min-max), and the ratio of medians against sockit.
#
# File creation on these VMs' ext4 (mounted with discard) is slow and
# erratic right after trees are deleted: 0.1 to 1 ms per create. To see
# the transfer path alone, put the work folder on tmpfs:
#
#   scripts/bench-smallfiles.sh [ROUNDS=5]
#   BENCH_DIR=/dev/shm/bench-smallfiles scripts/bench-smallfiles.sh 5
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"

need=()
command -v rsync >/dev/null || need+=(rsync)
command -v nc.openbsd >/dev/null || need+=(netcat-openbsd)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else echo "needs ${need[*]} (apt-get install ${need[*]})" >&2; exit 1; fi
fi
cargo build --release --locked -q
sockit="$PWD/target/release/sockit"
work="${BENCH_DIR:-$PWD/target/bench-smallfiles}"
rm -rf "$work"; mkdir -p "$work"/{srv,rsyncd,down,nc-up,cfg}
export XDG_CONFIG_HOME="$work/cfg"

echo "making the tree..."
python3 - "$work/src" <<'PY'
import os, random, sys
root = sys.argv[1]
r = random.Random(15)
for d in range(50):
    os.makedirs(f"{root}/dir{d:02}", exist_ok=True)
    for f in range(100):
        with open(f"{root}/dir{d:02}/file{f:03}.bin", "wb") as out:
            out.write(r.randbytes(r.randint(100, 8192)))
PY
cp -r "$work/src" "$work/srv/tree"      # what get -r fetches
cp -r "$work/src" "$work/rsyncd/tree"   # what rsync pulls
files=$(find "$work/src" -type f | wc -l)
bytes=$(du -sb "$work/src" | cut -f1)

now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_listen() { for _ in $(seq 400); do ss -ltn "sport = :$1" | grep -q LISTEN && return 0; sleep 0.01; done; return 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$sockit" serve --listen 127.0.0.1:0 --root "$work/srv" --insecure-no-auth --no-web \
  > "$work/serve.out" 2> "$work/serve.err" &
pids+=($!)
for _ in $(seq 400); do [ -s "$work/serve.out" ] && break; sleep 0.025; done
addr=$(sed -n 's/^listening on tcp \([^ ]*\).*/\1/p' "$work/serve.out" | head -1)
[ -n "$addr" ] || { echo "sockit serve did not start" >&2; exit 1; }

rport=$(free_port)
cat > "$work/rsyncd.conf" <<EOF
use chroot = no
uid = $(id -u)
gid = $(id -g)
[m]
path = $work/rsyncd
read only = no
EOF
rsync --daemon --no-detach --address 127.0.0.1 --port "$rport" --config "$work/rsyncd.conf" \
  --log-file "$work/rsyncd.log" &
pids+=($!)
wait_listen "$rport"

results="$work/results.tsv"
: > "$results"
timed() { # NAME OP COMMAND...
  local name=$1 op=$2; shift 2
  sync
  local t0 t1; t0=$(now); "$@"; t1=$(now)
  echo -e "$op\t$name\t$(python3 -c "print($t1 - $t0)")" >> "$results"
}

run() { # CONTENDER OP
  case "$1:$2" in
    sockit:put) rm -rf "$work/srv/up"; sync
      timed sockit put "$sockit" put -r "$addr" "$work/src" up --insecure-no-auth > /dev/null ;;
    sockit:get) rm -rf "$work/down/sockit"; sync
      timed sockit get "$sockit" get -r "$addr" tree -o "$work/down/sockit" --insecure-no-auth > /dev/null ;;
    rsync:put) rm -rf "$work/rsyncd/src"; sync
      timed rsync put rsync -a "$work/src" "rsync://127.0.0.1:$rport/m/" ;;
    rsync:get) rm -rf "$work/down/rsync"; sync
      timed rsync get rsync -a "rsync://127.0.0.1:$rport/m/tree/" "$work/down/rsync/" ;;
    tar-nc:put) rm -rf "$work/nc-up/src"; local p; p=$(free_port)
      (nc.openbsd -l 127.0.0.1 "$p" | tar x -C "$work/nc-up") & local l=$!
      wait_listen "$p"
      timed tar-nc put sh -c "tar c -C '$work' src | nc.openbsd -N 127.0.0.1 $p; wait" ; wait $l ;;
    tar-nc:get) rm -rf "$work/down/nc"; mkdir -p "$work/down/nc"; local p; p=$(free_port)
      (tar c -C "$work" src | nc.openbsd -N -l 127.0.0.1 "$p") & local l=$!
      wait_listen "$p"
      timed tar-nc get sh -c "nc.openbsd 127.0.0.1 $p | tar x -C '$work/down/nc'" ; wait $l ;;
  esac
}

contenders=(sockit rsync tar-nc)
for round in $(seq "$rounds"); do
  n=${#contenders[@]}
  order=()
  for i in $(seq 0 $((n - 1))); do order+=("${contenders[$(((i + round) % n))]}"); done
  echo "round $round/$rounds: ${order[*]}"
  for op in put get; do
    for who in "${order[@]}"; do run "$who" "$op"; done
  done
done

# Every contender moved the same tree.
diff -r "$work/src" "$work/srv/up" > /dev/null && diff -r "$work/srv/tree" "$work/down/sockit" > /dev/null \
  && diff -r "$work/src" "$work/rsyncd/src" > /dev/null && diff -r "$work/src" "$work/nc-up/src" > /dev/null \
  || { echo "a copy differs from the source" >&2; exit 1; }

python3 - "$results" "$files" "$bytes" "$rounds" <<'PY'
import statistics, sys
path, files, size, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t = {}
for line in open(path):
    op, who, secs = line.split("\t")
    t.setdefault((op, who), []).append(float(secs))
print(f"\n{files} files, {size / 2**20:.1f} MiB over loopback; median of {rounds} rotated rounds\n")
print("| op | contender | median s | min-max s | files/s | sockit ÷ this (time ratio, >1: sockit faster) |")
print("|---|---|---|---|---|---|")
for op in ("put", "get"):
    base = statistics.median(t[(op, "sockit")])
    for who in ("sockit", "rsync", "tar-nc"):
        v = t[(op, who)]
        m = statistics.median(v)
        print(f"| {op} | {who} | {m:.3f} | {min(v):.3f}-{max(v):.3f} | {files / m:,.0f} | {m / base:.2f}x |")
PY
