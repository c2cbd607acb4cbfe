#!/usr/bin/env bash
# Coverage-guided fuzzing of sockit-proto on the stable toolchain.
#   scripts/fuzz.sh [SECONDS] [TARGET]     (default: 20 s, frame_decoder)
# libFuzzer's coverage hooks come from rustc's sancov pass; --target keeps
# those flags off build scripts. Findings land in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-20}"
target="${2:-frame_decoder}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
cargo build --release --locked --target "$triple" --target-dir target/instrumented --bin "$target"
corpus="corpus/$target"
mkdir -p "$corpus" artifacts
cp -n "seeds/$target"/* "$corpus"/ 2>/dev/null || true
"target/instrumented/$triple/release/$target" -max_total_time="$secs" -artifact_prefix=artifacts/ \
  -print_final_stats=1 "$corpus" 2>&1 | tail -n 12
