#!/usr/bin/env bash
# The kernel's share of the SyncEvolution client's slow sync down on our server (BENCHMARKS.md
# "Instructions instead of seconds"): user and system CPU time and minor page faults of the
# server over the step (from /proc/PID/stat), and its system calls counted by `strace -c -f`
# in a second run (strace slows the server, so the times come from the first).
#
#   scripts/syscalls-download.sh [CONTACTS]      # default 10000; needs strace
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
cargo build --release -p syncml-server -p conformance
tick=$(getconf CLK_TCK)
run() { # run MODE WORK: MODE is times or strace
    local mode=$1 work=$2 bench pid tracer=
    target/release/syncevo-bench --server-bin target/release/syncml-server --servers ours \
        --contacts "$N" --dir "$work/run" >"$work/out" 2>"$work/err" &
    bench=$!
    until grep -q 'two-way' "$work/err" 2>/dev/null; do sleep 0.05; kill -0 $bench; done
    pid=$(pgrep -f -- "--data $work/run/" | head -1)
    if [[ $mode == strace ]]; then
        strace -c -f -p "$pid" -o "$work/strace" 2>/dev/null &
        tracer=$!
    fi
    local before after
    before=$(awk '{print $10, $14, $15}' "/proc/$pid/stat")
    # The last reading before the step's end (or the server's exit), 10 ms apart.
    after=$before
    until grep -q 'slow sync down' "$work/err" 2>/dev/null; do
        after=$(awk '{print $10, $14, $15}' "/proc/$pid/stat" 2>/dev/null || echo "$after")
        sleep 0.01
    done
    [[ -n $tracer ]] && { kill -INT "$tracer" 2>/dev/null || true; wait "$tracer" || true; }
    wait $bench || true
    grep 'slow sync down' "$work/err"
    if [[ $mode == times ]]; then
        read -r f0 u0 s0 <<<"$before"
        read -r f1 u1 s1 <<<"$after"
        awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v t="$tick" -v f=$((f1 - f0)) \
            'BEGIN {printf "user %.2f s, system %.2f s (%.0f %%), minor faults %d\n", u/t, s/t, 100*s/(u+s), f}'
    fi
    if [[ $mode == strace ]]; then
        grep -E 'calls|pwrite64|pread64|futex|epoll_wait|writev|total' "$work/strace"
    fi
}
work=$(mktemp -d /tmp/syscalls-download.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/a" "$work/b"
run times "$work/a"
run strace "$work/b"
