#!/usr/bin/env bash
# The server load figures of BENCHMARKS.md: one run of `syncml-load` on a freshly
# provisioned database (1,000 subscribers, 1,000 terminals, two-way sessions of 10 changes).
#
#   scripts/bench-server.sh sqlite C            # SQLite, one node, concurrency C
#   scripts/bench-server.sh pg C NODES [--hop]  # PostgreSQL on $PG_URL (default: a
#                                               # throwaway cluster started here), NODES nodes
#
# Build first: cargo build --release -p syncml-server -p syncml-examples
# PG_SYNC_COMMIT=off starts the throwaway cluster with synchronous_commit=off.
# SERVER_ARGS adds `serve` options (e.g. "--workers 512"), SERVER_ENV environment
# assignments for the server (e.g. "GLIBC_TUNABLES=..."), DURATION the measured seconds
# (default 20): what the A/B comparisons of BENCHMARKS.md vary. RATE=R paces the
# session starts at R sessions/s in total (latency below capacity, no closed-loop queue).
# After the run it prints each node's store counters from /metrics (write transactions,
# commits, writer busy seconds, checkpoints: warm-up round included) and, with CPU_SPLIT=1,
# the CPU seconds per process name over the measured part (scripts/cpu-by-process.sh;
# needs DURATION of 12 or more).
set -euo pipefail
cd "$(dirname "$0")/.."
B=target/release
kind=${1:?sqlite or pg}; C=${2:?concurrency}; N=${3:-1}; HOP=${4:-}
work=$(mktemp -d /tmp/bench-server.XXXXXX)
pids=()
. scripts/lib/pg-cluster.sh
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    pg_cluster_stop
}
trap cleanup EXIT
load=(--subscribers 1000 --terminals 1000 --mode two-way --items 10)
urls=()
if [[ $kind == sqlite ]]; then
    $B/syncml-load --data "$work/data" "${load[@]}" --provision-only >/dev/null
    env ${SERVER_ENV:-} $B/syncml-server --data "$work/data" serve --listen 127.0.0.1:18089 \
        ${SERVER_ARGS:-} >"$work/node1.log" 2>&1 &
    pids+=($!); urls+=(--url http://127.0.0.1:18089/sync)
else
    if [[ -z ${PG_URL:-} ]]; then
        pg_cluster_start "$work" 54329 max_connections=300 shared_buffers=512MB \
            "synchronous_commit=${PG_SYNC_COMMIT:-on}"
    fi
    $B/syncml-load --db "$PG_URL" "${load[@]}" --provision-only >/dev/null
    for i in $(seq 1 "$N"); do
        env ${SERVER_ENV:-} $B/syncml-server --db "$PG_URL" serve --listen 127.0.0.1:1809$i \
            ${SERVER_ARGS:-} >"$work/node$i.log" 2>&1 &
        pids+=($!); urls+=(--url http://127.0.0.1:1809$i/sync)
    done
fi
sleep 1.5
if [[ ${CPU_SPLIT:-0} == 1 ]]; then
    # From 8 s in (after the warm-up round) to 2 s before the measured part ends.
    scripts/cpu-by-process.sh 8 "$(( ${DURATION:-20} - 2 ))" >"$work/cpu-split.txt" &
    split_pid=$!
fi
$B/syncml-load "${urls[@]}" $HOP "${load[@]}" --concurrency "$C" --duration "${DURATION:-20}" --warmup \
    ${RATE:+--rate "$RATE"} --verify --server-pid "${pids[0]}" --quiet | grep -v '^diverged'
for p in "${pids[@]}"; do ps -o rss=,time= -p "$p" | sed "s/^/node $p rss KiB, cpu time: /"; done
for u in "${urls[@]}"; do
    [[ $u == --url ]] && continue
    curl -fsS "${u%/sync}/metrics" | grep '^syncml_store_' | sed "s|^|${u%/sync} |" || true
done
if [[ -n ${split_pid:-} ]]; then
    wait "$split_pid"
    sed 's/^/cpu seconds by process: /' "$work/cpu-split.txt"
fi
