#!/usr/bin/env bash
# Counts the SQL statements PostgreSQL runs per two-way session of 10 changes (the
# "statements per session" figures of BENCHMARKS.md): a throwaway cluster with
# log_statement=all, one node, SESSIONS (default 50) measured sessions at concurrency 1
# after the warm-up round, then the statements of the measured part grouped by text.
#
#   scripts/pg-statements.sh            # build first: cargo build --release -p syncml-server -p syncml-examples
set -euo pipefail
cd "$(dirname "$0")/.."
B=target/release
S=${SESSIONS:-50}
work=$(mktemp -d /tmp/pg-statements.XXXXXX)
. scripts/lib/pg-cluster.sh
pid=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
    pg_cluster_stop
}
trap cleanup EXIT
pg_cluster_start "$work" 54339 log_statement=all
URL=$PG_URL
load=(--subscribers 10 --terminals 10 --mode two-way --items 10)
$B/syncml-load --db "$URL" "${load[@]}" --provision-only >/dev/null 2>&1
$B/syncml-server --db "$URL" serve --listen 127.0.0.1:18199 >"$work/node.log" 2>&1 &
pid=$!
sleep 1.5
# The warm-up round (one slow sync per terminal) runs first; mark the log where it ends.
$B/syncml-load --url http://127.0.0.1:18199/sync "${load[@]}" --sessions 10 --quiet >/dev/null
mark=$(wc -l <"$work/pg.log")
$B/syncml-load --url http://127.0.0.1:18199/sync "${load[@]}" --sessions "$S" --quiet | grep -E '^sessions|^messages'
tail -n +"$((mark + 1))" "$work/pg.log" | grep -E 'LOG:  (statement|execute)' \
    | sed -E 's/^.*LOG:  (statement|execute [^:]*): //' | sed -E 's/\s+/ /g' | cut -c1-110 \
    | sort | uniq -c | sort -rn | awk -v s="$S" '{n=$1; $1=""; printf "%6.2f /session %s\n", n/s, $0; t+=n} END {printf "%6.2f /session in all\n", t/s}'
