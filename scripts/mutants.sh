#!/usr/bin/env bash
# Mutation testing with cargo-mutants over booking-core (conflict, idempotency, schedule,
# engine, domain) and booking-memory, then a per-file table of caught / missed / unviable /
# timeout mutants. Long (minutes per file on a small machine): not part of CI.
#
# Usage: bash scripts/mutants.sh [FILE ...]
#   FILE  source files to mutate, relative to the workspace root, e.g.
#         booking-core/src/conflict.rs; default: every file in scope (see `groups` below)
# Environment:
#   MUTANTS_OUT       where results go (default target/mutants); one folder per test group,
#                     each holding cargo-mutants' mutants.out/. The table sums every
#                     mutants.out/ below target/mutants, so runs split over several
#                     MUTANTS_OUT folders under it add up
#   MUTANTS_TIMEOUT   seconds a mutant's tests may run before it counts as a timeout (default:
#                     cargo-mutants' own, five times the unmutated baseline's test time)
#   MUTANTS_NICE      niceness of the run (10), so it does not starve other work
#   MUTANTS_JOBS      mutants built and tested at once (1); each job has its own scratch copy
#   MUTANTS_BASELINE  "skip" skips the unmutated baseline run (default: run it)
#   MUTANTS_ITERATE=1 test again only the mutants that the last run in MUTANTS_OUT missed or
#                     timed out on (cargo-mutants --iterate), e.g. after adding tests
#   MUTANTS_SHARD=K/N test only the K-th of N shards of the mutants (cargo-mutants --shard),
#                     e.g. to spread one file over several machines or output folders
#   MUTANTS_LIST=1    only list the mutants that would be tested, with no build
#   MUTANTS_SUMMARY=1 only print the table of the results already in MUTANTS_OUT
#
# Each mutant is tested with the cheapest command that still means something (see the
# groups below): never the doc tests, which compile one binary per example; only the unit
# tests for the three files whose own tests must kill every mutant; unit and integration
# tests elsewhere, plus booking-memory's (the conformance suite and model runs) for the
# engine and domain files, whose mutants that suite is what catches. The selection is
# passed as cargo args, so a mutant's build skips the test targets that will not run.
# docs/MUTATION.md has the latest results and the reasons for every mutant left missed.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_mutants_version="27.1.0"
out="${MUTANTS_OUT:-target/mutants}"
nice_level="${MUTANTS_NICE:-10}"
jobs="${MUTANTS_JOBS:-1}"

if ! cargo mutants --version 2>/dev/null | grep -q "$cargo_mutants_version"; then
    cargo install cargo-mutants --locked --version "$cargo_mutants_version"
fi

# Test groups: which files, which packages' tests, which `cargo test` target selection.
# conflict.rs, idempotency.rs and the booking status machine are pinned by their own unit
# tests (the goal there is no missed mutant from those alone); schedule files also have
# property and DST tests under booking-core/tests; engine and domain mutants are mostly
# caught by the conformance suite and model that booking-memory runs.
group_of() {
    case "$1" in
        booking-core/src/conflict.rs | booking-core/src/idempotency.rs | \
            booking-core/src/domain/booking.rs)
            echo core-unit ;;
        booking-core/src/engine.rs | booking-core/src/engine/* | booking-core/src/domain/*)
            echo core-engine ;;
        booking-core/src/schedule/*) echo core-schedule ;;
        booking-memory/src/*) echo memory ;;
        *)
            echo "not in scope: $1" >&2
            return 1
            ;;
    esac
}
packages_of() {
    case "$1" in
        core-unit | core-schedule) echo booking-core ;;
        core-engine) echo booking-core,booking-memory ;;
        memory) echo booking-memory ;;
    esac
}
test_args_of() {
    case "$1" in
        core-unit) echo --lib ;;
        *) echo --lib --tests ;;
    esac
}

if [[ $# -gt 0 ]]; then
    files=("$@")
else
    mapfile -t files < <(
        ls booking-core/src/conflict.rs booking-core/src/idempotency.rs \
            booking-core/src/engine.rs booking-core/src/engine/*.rs \
            booking-core/src/domain/*.rs booking-core/src/schedule/*.rs \
            booking-memory/src/*.rs | grep -v '^booking-memory/src/tests.rs$'
    )
fi

summary() {
    python3 - "$out" <<'EOF'
import json, pathlib, sys
from collections import defaultdict

root = pathlib.Path(sys.argv[1])
kinds = {"CaughtMutant": "caught", "MissedMutant": "missed", "Unviable": "unviable",
         "Timeout": "timeout"}
table = defaultdict(lambda: defaultdict(int))
missed = []
for path in sorted(root.glob("**/mutants.out/outcomes.json")):
    # A run with MUTANTS_ITERATE=1 retests only what the run before did not catch, and its
    # outcomes hold only those: say so rather than add up names whose lines have moved.
    if path.with_name("previously_caught.txt").exists():
        print(f"{path.parent}: an iterate run, counting only the mutants it retested")
    for o in json.loads(path.read_text())["outcomes"]:
        scenario = o["scenario"]
        if not isinstance(scenario, dict) or "Mutant" not in scenario:
            continue  # the baseline
        m = scenario["Mutant"]
        kind = kinds.get(o["summary"], o["summary"].lower())
        table[m["file"]][kind] += 1
        if kind in ("missed", "timeout"):
            missed.append(f'{kind}: {m["name"]}')
if not table:
    sys.exit(f"no results under {root}")
cols = ["caught", "missed", "unviable", "timeout"]
print(f'{"file":<44}' + "".join(f"{c:>10}" for c in cols) + f'{"missed %":>10}')
total = defaultdict(int)
for f in sorted(table):
    row = table[f]
    viable = row["caught"] + row["missed"] + row["timeout"]
    pct = 100 * row["missed"] / viable if viable else 0
    print(f"{f:<44}" + "".join(f"{row[c]:>10}" for c in cols) + f"{pct:>9.1f}%")
    for c in cols:
        total[c] += row[c]
viable = total["caught"] + total["missed"] + total["timeout"]
pct = 100 * total["missed"] / viable if viable else 0
print(f'{"total":<44}' + "".join(f"{total[c]:>10}" for c in cols) + f"{pct:>9.1f}%")
if missed:
    print("\nmissed or timed out:")
    print("\n".join(missed))
EOF
}

if [[ "${MUTANTS_SUMMARY:-}" == 1 ]]; then
    summary
    exit 0
fi

declare -A by_group
for f in "${files[@]}"; do
    g="$(group_of "$f")"
    by_group[$g]+=" --file $f"
done

for g in "${!by_group[@]}"; do
    # shellcheck disable=SC2206 # word splitting of "--file F" pairs is intended
    file_args=(${by_group[$g]})
    # The `mutants` profile (Cargo.toml) is the test profile without debug info: the same
    # tests, a faster link for each mutant.
    # Test modules behind `#[cfg(all(test, ...))]` are not recognised as tests by
    # cargo-mutants; their helpers (` tests::`) are left out by name.
    args=(--jobs "$jobs" --profile mutants --output "$out/$g" --exclude-re ' tests::'
        "${file_args[@]}")
    if [[ -n "${MUTANTS_TIMEOUT:-}" ]]; then
        args+=(--timeout "$MUTANTS_TIMEOUT")
    fi
    IFS=, read -ra packages <<<"$(packages_of "$g")"
    for p in "${packages[@]}"; do
        args+=(--test-package "$p")
    done
    # As cargo args (not only test args), so that the build skips the other test targets.
    for a in $(test_args_of "$g"); do
        args+=(--cargo-arg "$a")
    done
    if [[ -n "${MUTANTS_SHARD:-}" ]]; then
        args+=(--shard "$MUTANTS_SHARD")
    fi
    if [[ "${MUTANTS_ITERATE:-}" == 1 ]]; then
        args+=(--iterate)
    fi
    if [[ "${MUTANTS_BASELINE:-}" == skip ]]; then
        args+=(--baseline skip)
    fi
    if [[ "${MUTANTS_LIST:-}" == 1 ]]; then
        cargo mutants --list "${args[@]}"
        continue
    fi
    echo "== $g: ${packages[*]} tests over${by_group[$g]//--file /}"
    mkdir -p "$out/$g"
    # A missed mutant makes cargo-mutants exit non-zero; the table below says which.
    nice -n "$nice_level" cargo mutants "${args[@]}" || true
done

[[ "${MUTANTS_LIST:-}" == 1 ]] || summary
