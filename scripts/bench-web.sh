#!/usr/bin/env bash
# Benchmark: a large upload and download over HTTP with curl, against
# sockit's web listener and, side by side in one run, dufs and miniserve
# serving the same kind of folder. Each round rotates who goes first (order
# effects here are larger than the differences measured) and a `sync`
# precedes every timed transfer. Reports median seconds, MB/s, the spread,
# the ratio sockit/baseline of throughput, and each server's peak RSS.
#
#   scripts/bench-web.sh [SIZE_MIB=1024] [ROUNDS=5]
#
# Uploads use each server's own way: sockit and dufs take `curl -T` (PUT),
# miniserve a multipart POST (`curl -F`). sockit runs with its token (auth
# on), the others open. Downloads go to /dev/null, so they measure the
# server and the network path, not this machine's page cache.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-1024}"
rounds="${2:-5}"

peers="$PWD/target/peers/cargo"
if [ ! -x "$peers/bin/dufs" ] || [ ! -x "$peers/bin/miniserve" ]; then
  echo "installing dufs and miniserve into $peers (once)..."
  cargo install --locked --root "$peers" dufs miniserve
fi
cargo build --release --locked -q
sockit="$PWD/target/release/sockit"
work="$PWD/target/bench-web"
rm -rf "$work"; mkdir -p "$work"/{src,cfg,sockit,dufs,miniserve}
src="$work/src/payload.bin"
echo "making a ${size_mib} MiB file..."
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$src"
for d in sockit dufs miniserve; do cp "$src" "$work/$d/payload.bin"; done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

XDG_CONFIG_HOME="$work/cfg" "$sockit" serve --listen 127.0.0.1:0 --web 127.0.0.1:0 \
  --root "$work/sockit" > "$work/sockit.out" 2> "$work/sockit.err" &
sockit_pid=$!
dufs_port=$(free_port)
"$peers/bin/dufs" --allow-upload --allow-delete -b 127.0.0.1 -p "$dufs_port" "$work/dufs" > "$work/dufs.log" 2>&1 &
dufs_pid=$!
mini_port=$(free_port)
"$peers/bin/miniserve" --upload-files --on-duplicate-files overwrite -i 127.0.0.1 -p "$mini_port" "$work/miniserve" \
  > "$work/miniserve.log" 2>&1 &
mini_pid=$!
trap 'kill $sockit_pid $dufs_pid $mini_pid 2>/dev/null || true' EXIT

for _ in $(seq 200); do grep -q '^web: ' "$work/sockit.out" 2>/dev/null && break; sleep 0.05; done
url=$(sed -n 's/^web: //p' "$work/sockit.out")
base=${url%%/#*}
token=${url#*#token=}
# The others announce nothing parseable: wait until they answer.
for port in "$dufs_port" "$mini_port"; do
  for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
done

time_of() { curl -sS -f -o /dev/null -w '%{time_total}' "$@"; }
upload() {
  case $1 in
    sockit) time_of -T "$src" -H "Authorization: Bearer $token" "$base/files/up.bin" ;;
    dufs) time_of -T "$src" "http://127.0.0.1:$dufs_port/up.bin" ;;
    miniserve) time_of -F "path=@$src;filename=up.bin" "http://127.0.0.1:$mini_port/upload?path=/" ;;
  esac
}
download() {
  case $1 in
    sockit) time_of -H "Authorization: Bearer $token" "$base/files/payload.bin" ;;
    dufs) time_of "http://127.0.0.1:$dufs_port/payload.bin" ;;
    miniserve) time_of "http://127.0.0.1:$mini_port/payload.bin" ;;
  esac
}

results="$work/results.tsv"
: > "$results"
contenders=(sockit dufs miniserve)
for round in $(seq "$rounds"); do
  echo "round $round/$rounds"
  for op in upload download; do
    for i in 0 1 2; do
      c=${contenders[$(((round + i) % 3))]}
      sync
      t=$($op "$c")
      echo -e "$op\t$c\t$t" >> "$results"
    done
  done
  rm -f "$work"/{sockit,dufs,miniserve}/up.bin
done

rss() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
echo -e "rss\tsockit\t$(rss $sockit_pid)\nrss\tdufs\t$(rss $dufs_pid)\nrss\tminiserve\t$(rss $mini_pid)" >> "$results"

python3 - "$results" "$size_mib" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
mib = int(sys.argv[2])
times, rss = {}, {}
for op, who, v in rows:
    if op == "rss":
        rss[who] = int(v) / 1024
    else:
        times.setdefault((op, who), []).append(float(v))
print(f"\n{mib} MiB over loopback, {len(times[('upload', 'sockit')])} rounds, medians:\n")
print("| op | server | median s | MB/s | spread s | sockit ÷ this (throughput) |")
print("|---|---|---|---|---|---|")
for op in ("upload", "download"):
    ours = statistics.median(times[(op, "sockit")])
    for who in ("sockit", "dufs", "miniserve"):
        t = times[(op, who)]
        med = statistics.median(t)
        mbs = mib * 1048576 / med / 1e6
        ratio = "" if who == "sockit" else f"{med / ours:.2f}x"
        print(f"| {op} | {who} | {med:.3f} | {mbs:,.0f} | {min(t):.3f}-{max(t):.3f} | {ratio} |")
print("\npeak RSS, MiB: " + ", ".join(f"{w} {v:.1f}" for w, v in rss.items()))
PY
