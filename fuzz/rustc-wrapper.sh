#!/usr/bin/env bash
# RUSTC_WRAPPER for run.sh. cargo-afl builds every crate instrumented, at -C opt-level=3 (or
# AFL_OPT_LEVEL) and with one codegen unit, which makes the build the slow part of a short run.
# The big dependencies that no target calls into (the HTTP stack, the store, the CLI) are built
# here without the instrumentation, unoptimized; every other crate is built as cargo-afl says.
case "${CARGO_PKG_NAME:-}" in
    sled | tokio | clap_builder | clap | regex-automata | regex-syntax | tracing-subscriber | \
        axum | axum-core | hyper | hyper-util | indicatif | console | crossbeam-epoch | \
        crossbeam-utils | parking_lot | parking_lot_core | futures-util | h2 | tower | http) ;;
    *) exec "$@" ;;
esac
args=()
while (($#)); do
    if [[ $1 == -C ]]; then
        case "${2:-}" in
            passes=sancov* | llvm-args=-sanitizer-coverage* | codegen-units=* | opt-level=*)
                shift 2
                continue
                ;;
        esac
    fi
    args+=("$1")
    shift
done
exec "${args[@]}" -C opt-level=0
