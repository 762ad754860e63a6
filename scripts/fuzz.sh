#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/fuzz_targets) for a while each and prints, per target,
# the executions, the corpus growth and the findings (crash files under fuzz/artifacts/).
# Installs what it needs: the nightly toolchain and cargo-fuzz (pinned), on first use.
#
# Usage: bash scripts/fuzz.sh [MINUTES] [TARGET ...]
#   MINUTES  per target (default 1); the issue's acceptance run used 10
#   TARGET   default: every target in fuzz/Cargo.toml
# Environment: FUZZ_JOBS (default 1) parallel fuzzing processes per target; FUZZ_NICE
# (default 10) niceness, so a run does not starve builds on a small machine.
#
# New inputs the fuzzer keeps land in fuzz/corpus/<target>/; `booking-core/tests/fuzz_corpus.rs`
# and `reference-server/tests/fuzz_corpus.rs` replay that corpus in the normal test suite.
# Before committing a grown corpus, minimise it:
#   cargo +nightly fuzz cmin --fuzz-dir fuzz <target>
set -euo pipefail
cd "$(dirname "$0")/.."

minutes="${1:-1}"
shift || true
jobs="${FUZZ_JOBS:-1}"
nice_level="${FUZZ_NICE:-10}"
cargo_fuzz_version="0.13.2"

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
    cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^booking-fuzz$')
fi

summary="$(mktemp)"
trap 'rm -f "$summary"' EXIT
printf '%-20s %8s %14s %10s %10s %9s\n' target seconds executions exec/s corpus+ crashes >"$summary"

for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    artifacts="fuzz/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    before_corpus=$(find "$corpus" -type f | wc -l)
    before_crashes=$(find "$artifacts" -type f | wc -l)
    log="$(mktemp)"
    seconds=$((minutes * 60))
    echo "== fuzzing $target for ${minutes} min (jobs: $jobs)"
    # -print_final_stats prints stat::number_of_executed_units when a run ends.
    set +e
    parallel=()
    if [[ $jobs -gt 1 ]]; then
        parallel=(--jobs "$jobs")
    fi
    nice -n "$nice_level" cargo +nightly fuzz run --fuzz-dir fuzz "${parallel[@]}" "$target" \
        "$corpus" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
    status=$?
    set -e
    # With --jobs, libFuzzer writes one fuzz-N.log per process in the working directory.
    execs=$({ cat "$log" fuzz-*.log 2>/dev/null || true; } |
        { grep -o 'stat::number_of_executed_units: *[0-9]*' || true; } |
        awk '{s += $2} END {print s + 0}')
    rm -f fuzz-*.log
    after_corpus=$(find "$corpus" -type f | wc -l)
    after_crashes=$(find "$artifacts" -type f | wc -l)
    crashes=$((after_crashes - before_crashes))
    printf '%-20s %8d %14d %10d %10d %9d\n' "$target" "$seconds" "$execs" \
        $((execs / seconds)) $((after_corpus - before_corpus)) "$crashes" >>"$summary"
    if [[ $status -ne 0 || $crashes -gt 0 || $execs -eq 0 ]]; then
        echo "fuzz: $target stopped with status $status; crash inputs in $artifacts" >&2
        tail -n 40 "$log" >&2
    fi
    rm -f "$log"
done

cat "$summary"
