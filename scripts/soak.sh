#!/usr/bin/env bash
# Soak: every service under mixed load with faults for DURATION seconds,
# checking that RSS and open fds stay flat and no acknowledged upload is
# lost (scripts/soak.py says what the clients do).
#
#   scripts/soak.sh [DURATION=60] [CLIENTS=100]
#
# One `sockit serve --config` runs files, echo (TCP and UDP), chat and TFTP
# with auth on the TCP services; one `sockit ipmsg listen` is the IPMSG
# node. Exit 0 when every check held; the Markdown report is printed (and
# kept in target/soak/report.md).
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-60}"
clients="${2:-100}"

cargo build --release --locked -q
sockit="$PWD/target/release/sockit"
work="$PWD/target/soak"
rm -rf "$work"; mkdir -p "$work"/{root,cfg}
export XDG_CONFIG_HOME="$work/cfg"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/key"
chmod 600 "$work/key"
# TFTP downloads are lock-step at 512 bytes: a few hundred KiB each.
head -c $((300 * 1024 + 123)) /dev/urandom > "$work/root/soak.bin"
tftp_md5=$(md5sum "$work/root/soak.bin" | cut -d' ' -f1)

cat > "$work/sockit.toml" <<TOML
[defaults]
key_file = "$work/key"

[[service]]
kind = "files"
listen = "127.0.0.1:0"
root = "$work/root"

[[service]]
kind = "echo"
tcp = "127.0.0.1:0"
udp = "127.0.0.1:0"

[[service]]
kind = "chat"
listen = "127.0.0.1:0"
idle_timeout = 30

[[service]]
kind = "tftp"
udp = "127.0.0.1:0"
root = "$work/root"
TOML

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$sockit" serve --config "$work/sockit.toml" > "$work/serve.out" 2> "$work/serve.err" &
pids+=($!)
serve_pid=$!
for _ in $(seq 400); do [ "$(grep -c '^listening on' "$work/serve.out" 2>/dev/null)" -ge 5 ] && break; sleep 0.025; done
addr() { grep "($1" "$work/serve.out" | grep "listening on $2" | awk '{print $4}' | head -1; }

ipmsg_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$sockit" ipmsg listen --bind "127.0.0.1:$ipmsg_port" > "$work/ipmsg.out" 2> "$work/ipmsg.err" &
pids+=($!)
ipmsg_pid=$!
for _ in $(seq 400); do grep -q "ipmsg on" "$work/ipmsg.err" 2>/dev/null && break; sleep 0.025; done

set +e
python3 scripts/soak.py \
  --files "$(addr files tcp)" --echo-tcp "$(addr echo tcp)" --echo-udp "$(addr echo udp)" \
  --chat "$(addr chat tcp)" --tftp "$(addr tftp udp)" --ipmsg "127.0.0.1:$ipmsg_port" \
  --root "$work/root" --key "$work/key" --tftp-md5 "$tftp_md5" \
  --pids "$serve_pid,$ipmsg_pid" --names "sockit serve,sockit ipmsg" \
  --duration "$duration" --clients "$clients" | tee "$work/report.md"
status=${PIPESTATUS[0]}
exit "$status"
