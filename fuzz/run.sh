#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target (or the ones named) for SECONDS
# each; fails if any target finds a crash, a timeout or an out-of-memory.
#   fuzz/run.sh SECONDS [TARGET...]
# Installs the nightly toolchain and cargo-fuzz if missing, seeds the
# corpora (seed.sh), builds once, then runs the targets one after another.
# CARGO_TARGET_DIR (default fuzz/target) is the build's own directory: the
# instrumented nightly build shares nothing with the workspace's.
# Each target's libFuzzer log is kept in fuzz/logs/<target>.log, and a crash
# input in fuzz/artifacts/<target>/ (replay: cargo +nightly fuzz run
# <flags below> <target> <file>).
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(decode_request near_valid_request encode_answer config event_envelope)
fi

# Build flags, the same for build and run so run never rebuilds:
# - no sanitizer: the host denies unsafe code, so AddressSanitizer would
#   find nothing Rust's own checks do not, and it makes the instrumented
#   wasmtime build and every execution slower;
# - debug assertions and overflow checks on (cargo-fuzz's default with -O,
#   made explicit): arithmetic overflow is a crash here, as in a debug build;
# - (optimized builds) 16 codegen units instead of cargo-fuzz's 1: the build is dominated by
#   wasmtime and cranelift, which one LLVM unit each would serialize.
flags=(--sanitizer none --debug-assertions
       --target-dir "${CARGO_TARGET_DIR:-$PWD/target}")
# HOOKBOX_FUZZ_PROFILE=dev builds unoptimized: CI's short smoke run is
# dominated by the build (from nothing on 2 cores: 353 s instead of 858 s),
# at some 20-60x fewer executions per second; a long run wants the default.
if [ "${HOOKBOX_FUZZ_PROFILE:-release}" = dev ]; then
    flags+=(--dev)
else
    flags+=(--codegen-units 16)
fi

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

bash seed.sh
build_start=$(date +%s)
cargo +nightly fuzz build "${flags[@]}"
echo "fuzz build: $(( $(date +%s) - build_start ))s"

# The config target's seeds name this variable in `secrets_env`.
export HOOKBOX_FUZZ_SECRET=fuzz-secret
mkdir -p logs
failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t: ${seconds}s"
    # Past findings (regressions/<target>/) are read as a second corpus:
    # libFuzzer runs every input first, so a finding that comes back fails
    # the run at once; new inputs go to the first directory only.
    dirs=("corpus/$t")
    [ -d "regressions/$t" ] && dirs+=("regressions/$t")
    # -timeout: one input taking 25 s is a hang (the machine may be busy);
    # -rss_limit_mb: a leak or a blow-up past 2 GiB is a failure.
    if ! cargo +nightly fuzz run "${flags[@]}" "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
        -print_final_stats=1 >"logs/$t.log" 2>&1; then
        failed+=("$t")
        tail -40 "logs/$t.log"
    fi
    # libFuzzer's last status line and final stats.
    grep -E '^#[0-9]+ +(DONE|pulse|NEW|REDUCE)' "logs/$t.log" | tail -1 || true
    grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "logs/$t.log" || true
    echo "corpus: $(find "corpus/$t" -type f | wc -l) inputs"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no crash"
