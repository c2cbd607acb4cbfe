#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test, a short fuzz run.
# Installs the peers the interop tests talk to (as root, when missing).
# With CI=true a missing peer is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# Debian package that provides each command the tests run.
declare -A PEERS=(
  [python3]=python3
  [mount]=mount
  [ncat]=ncat
  [nc.openbsd]=netcat-openbsd
  [openssl]=openssl
  [setsid]=util-linux
  [setpriv]=util-linux
  [script]=bsdutils
  [socat]=socat
  [ipcalc]=ipcalc
  [tftp]=tftp-hpa
  [in.tftpd]=tftpd-hpa
  [atftp]=atftp
  [curl]=curl
  [ip]=iproute2
  [iptux]=iptux
  [Xvfb]=xvfb
  [man]=man-db
  [chromium]=chromium
  [chromedriver]=chromium-driver
  [fc-list]=fontconfig
  [systemd-socket-activate]=systemd
  [systemd-analyze]=systemd
  [tcpdump]=tcpdump
  [tshark]=tshark
  [nats-server]=nats-server
)

install_peers() {
  local missing=()
  for cmd in "${!PEERS[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${PEERS[$cmd]}")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  elif [ "${CI:-}" = true ]; then
    echo "missing test peers: ${missing[*]} (and not root to install them)" >&2
    exit 1
  else
    echo "warning: missing ${missing[*]}; their interop tests will be skipped" >&2
  fi
}

install_peers

# Screenshots and the page's tests show Chinese text: without these fonts
# it renders as boxes.
if ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing fonts-noto-cjk"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk
  else
    echo "warning: fonts-noto-cjk missing; Chinese text in screenshots shows as boxes" >&2
  fi
fi

# The JSON schema test validates with Python's jsonschema (an independent
# implementation), in whichever python3 the tests will run.
if ! python3 -c 'import jsonschema' 2>/dev/null; then
  log "installing the jsonschema Python module"
  python3 -m pip install -q jsonschema || { [ "${CI:-}" = true ] && exit 1; }
fi

# atftpd conflicts with tftpd-hpa as a package: unpack it instead, where
# tests/tftp.rs looks for it.
ATFTPD_DIR=target/peers/atftpd
install_atftpd() {
  [ -x "$ATFTPD_DIR/usr/sbin/atftpd" ] && return 0
  local tmp
  tmp=$(mktemp -d)
  fetch() { (cd "$tmp" && apt-get download -qq atftpd >/dev/null 2>&1); }
  if fetch || { [ "$(id -u)" = 0 ] && apt-get update -qq && fetch; }; then
    mkdir -p "$ATFTPD_DIR"
    dpkg-deb -x "$tmp"/atftpd_*.deb "$ATFTPD_DIR"
  elif [ "${CI:-}" = true ]; then
    echo "cannot fetch atftpd (apt-get download atftpd)" >&2
    exit 1
  else
    echo "warning: atftpd unavailable; its interop tests will be skipped" >&2
  fi
  rm -rf "$tmp"
}
install_atftpd

# The object-store tests run against s3s-fs, a real S3 implementation over a
# folder. 0.14 is the newest that builds on this toolchain (0.17 needs rustc
# 1.96).
if ! command -v s3s-fs >/dev/null 2>&1; then
  log "installing s3s-fs"
  cargo install --locked s3s-fs --version 0.14.1 --features binary ||
    { [ "${CI:-}" = true ] && exit 1; echo "warning: s3s-fs unavailable; object-store tests will be skipped" >&2; }
fi

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "fuzz (short runs)"
for target in frame_decoder proto_parsers explain; do
  scripts/fuzz.sh "${FUZZ_SECONDS:-15}" "$target"
done

# Last, so the runner's summary closes the output.
log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
