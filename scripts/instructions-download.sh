#!/usr/bin/env bash
# Instructions our server executes for the SyncEvolution client's slow sync down (the
# step BENCHMARKS.md compares with SyncEvolution's server), counted by valgrind's
# callgrind: unlike CPU time, the count does not move with the host's speed, so two
# builds can be compared on a noisy machine. Kernel work (reads of the OS file cache,
# page faults) is not counted: time it with scripts/profile-download.sh.
#
#   scripts/instructions-download.sh [CONTACTS] [SERVER_BIN]   # default 10000, this build
#
# Needs valgrind and what scripts/bench-syncevolution.sh needs. Prints the total and the
# biggest inclusive costs; the callgrind file is kept (its path is printed) for
# callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
cargo build --release -p syncml-server -p conformance
bin=$(realpath "${2:-target/release/syncml-server}")
work=$(mktemp -d /tmp/instructions-download.XXXXXX)
out="$work/callgrind.out"
# syncevo-bench starts the server through this wrapper; instrumentation is switched on
# for the download step only, and the file is written when the bench stops the server
# (SIGTERM).
cat >"$work/server" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$out $bin "\$@"
EOF
chmod +x "$work/server"
target/release/syncevo-bench --server-bin "$work/server" --servers ours --step-timeout 900 \
    --contacts "$N" --dir "$work/run" >"$work/out" 2>"$work/err" &
bench=$!
trap 'kill $bench 2>/dev/null || true' EXIT
until grep -q 'two-way' "$work/err" 2>/dev/null; do sleep 0.2; kill -0 $bench; done
pid=$(pgrep -f -- "callgrind.*--data $work/run/" | head -1)
callgrind_control -i on "$pid" >/dev/null
wait $bench
grep 'slow sync down' "$work/err"
callgrind_annotate --inclusive=yes --auto=no "$out" 2>/dev/null |
    grep -E 'PROGRAM TOTALS|Engine::(start|continue)_pkg4 |codec::decode |Tx>::(map_put|items_get|session_pending_put|session_pending_remove_through) |sqlite3_step ' |
    sed -E 's|/root/.cargo/registry/src/[^/]+/||; s|/[^ ]*/work/main/||; s| \[[^]]*\]$||'
echo "callgrind file: $out"
