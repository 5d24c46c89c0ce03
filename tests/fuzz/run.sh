#!/bin/sh
# Builds every libFuzzer target (tests/fuzz/fuzz_*.c) with clang into
# build-fuzz and runs each for SECONDS (default 20) from its seeds:
# tests/fuzz/corpus/<target>/ (hand-made, small) plus, for fuzz_json, the
# JSONTestSuite files of the shared data. New inputs go to
# build-fuzz/corpus/<target>/, crashes to build-fuzz/artifacts/<target>/.
#
#   tests/fuzz/run.sh [SECONDS]
#
# Exits 1 when any target found a crash, a leak or a timeout.
set -eu

secs=${1:-20}
root=$(cd "$(dirname "$0")/../.." && pwd)
build="$root/build-fuzz"
data="${RTP_DATA_DIR:-$root/../shared/data}"

targets=$(cd "$root/tests/fuzz" && for f in fuzz_*.c; do echo "${f%.c}"; done)
mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DRTP_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build/cmake.log" 2>&1 ||
    { cat "$build/cmake.log"; exit 1; }
# shellcheck disable=SC2086 # one argument per target
cmake --build "$build" -j "$(nproc)" --target $targets >"$build/build.log" 2>&1 ||
    { cat "$build/build.log"; exit 1; }

# Seed directories of a target, beyond its own hand-made ones.
extra_seeds() {
    case "$1" in
    fuzz_json) [ -d "$data/json-test-suite" ] && echo "$data/json-test-suite" ;;
    esac
    return 0
}

# Flags of a target beyond the common ones: the config target prints why
# each input is rejected, which only fills the log.
extra_flags() {
    case "$1" in
    fuzz_config) echo "-close_fd_mask=2" ;;
    esac
    return 0
}

failed=0
for t in $targets; do
    work="$build/corpus/$t"
    artifacts="$build/artifacts/$t/"
    mkdir -p "$work" "$artifacts"
    seeds=""
    [ -d "$root/tests/fuzz/corpus/$t" ] && seeds="$root/tests/fuzz/corpus/$t"
    seeds="$seeds $(extra_seeds "$t")"
    echo "== $t: ${secs}s, seeds:$seeds"
    # shellcheck disable=SC2086 # seed directories are separate arguments
    if "$build/tests/fuzz/$t" -max_total_time="$secs" -timeout=10 -max_len=65536 \
        -print_final_stats=1 $(extra_flags "$t") -artifact_prefix="$artifacts" "$work" $seeds \
        >"$build/$t.log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed=1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/$t.log")
    echo "   $status: ${execs:-?} executions, corpus $(find "$work" -type f | wc -l) inputs," \
        "$(find "$artifacts" -type f | wc -l) crash artifacts (log: $build/$t.log)"
    [ "$status" = ok ] || grep -m5 -E 'ERROR|SUMMARY|Test unit written' "$build/$t.log" || true
done
exit $failed
