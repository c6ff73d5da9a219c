#!/usr/bin/env bash
# Coverage-guided fuzzing of the three targets with AFL++ (cargo-afl, stable Rust). See README.md.
#
#   bash fuzz/run.sh [SECONDS]            fuzz each target SECONDS (default: FUZZ_SECONDS, else 20)
#   bash fuzz/run.sh replay TARGET FILE…  run files through one target's binary, as AFL does
#
# Environment: FUZZ_SECONDS, FUZZ_TARGETS (default "form omise_body update"), FUZZ_OPT_LEVEL
# (default 1: a quicker build; 3 for long runs), FUZZ_JOBS (cargo -j, default 2).
# Installs cargo-afl (and so AFL++, built from the source in the crate) if missing, builds the
# targets, fuzzes each from fuzz/corpus/TARGET into fuzz/out/TARGET (emptied first), and exits
# non-zero if any crash or hang was found, naming the inputs.
set -euo pipefail
caller_dir=$PWD
cd "$(dirname "$0")"
fuzz_dir=$PWD

cargo_afl_version=0.18.2 # keep equal to the `afl` dependency in Cargo.toml
jobs=${FUZZ_JOBS:-2}
opt_level=${FUZZ_OPT_LEVEL:-1}
host=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR="$fuzz_dir/target/o$opt_level"
bin_dir="$CARGO_TARGET_DIR/$host/release"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

install_afl() {
    if [[ $(cargo afl --version 2>/dev/null) != "cargo-afl $cargo_afl_version"* ]]; then
        echo "-- installing cargo-afl $cargo_afl_version (builds AFL++)"
        cargo install cargo-afl --version "$cargo_afl_version" --locked -j "$jobs"
    fi
    # The AFL++ runtime is built per rustc version; "already built" is the usual answer.
    local output
    if ! output=$(cargo afl config --build 2>&1); then
        if ! grep -q "already built" <<<"$output"; then
            echo "$output" >&2
            exit 1
        fi
    fi
}

build_targets() {
    # The main crate's lock file, so the fuzzed code has the dependencies that ship.
    cp ../Cargo.lock Cargo.lock
    echo "-- building the targets (AFL_OPT_LEVEL=$opt_level, into ${CARGO_TARGET_DIR#"$fuzz_dir/"})"
    # --target keeps cargo-afl's flags off build scripts and proc macros; the wrapper keeps them
    # off the big dependencies no target runs. Both only make the build quicker.
    RUSTC_WRAPPER="$fuzz_dir/rustc-wrapper.sh" AFL_OPT_LEVEL=$opt_level \
        cargo afl build --release --quiet -j "$jobs" --target "$host"
}

afl_stat() { sed -n "s/^$1 *: //p" "$2"; }

if [[ ${1:-} == replay ]]; then
    [[ $# -ge 3 ]] || { echo "usage: bash fuzz/run.sh replay TARGET FILE…" >&2; exit 2; }
    target=$2
    shift 2
    install_afl
    build_targets
    status=0
    for file in "$@"; do
        [[ $file == /* ]] || file="$caller_dir/$file"
        if RUST_BACKTRACE=1 "$bin_dir/$target" <"$file" >/dev/null; then
            echo "ok      $file"
        else
            echo "FAILED  $file (exit $?)"
            status=1
        fi
    done
    exit $status
fi

seconds=${1:-${FUZZ_SECONDS:-20}}
read -r -a targets <<<"${FUZZ_TARGETS:-form omise_body update}"

install_afl
build_targets

export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
mkdir -p out
failed=0
for target in "${targets[@]}"; do
    out="out/$target"
    rm -rf "$out"
    mkdir -p "$out"
    echo "-- fuzzing $target for ${seconds}s"
    if ! timeout $((seconds + 300)) cargo afl fuzz -V "$seconds" -i "corpus/$target" -o "$out" \
        -x params.dict "$bin_dir/$target" >"$out/afl.log" 2>&1; then
        echo "afl-fuzz failed on $target; the end of fuzz/$out/afl.log:" >&2
        tail -n 25 "$out/afl.log" >&2
        failed=1
        continue
    fi
    stats="$out/default/fuzzer_stats"
    echo "   $(afl_stat execs_done "$stats") executions ($(afl_stat execs_per_sec "$stats")/s)," \
        "corpus $(afl_stat corpus_count "$stats") (from $(find "corpus/$target" -type f | wc -l) seeds)," \
        "edges $(afl_stat edges_found "$stats")," \
        "crashes $(afl_stat saved_crashes "$stats"), hangs $(afl_stat saved_hangs "$stats")"
    while IFS= read -r -d '' finding; do
        echo "FOUND: fuzz/$finding" >&2
        echo "   replay: bash fuzz/run.sh replay $target fuzz/$finding" >&2
        failed=1
    done < <(find "$out/default/crashes" "$out/default/hangs" -type f -name 'id:*' -print0)
done
exit $failed
