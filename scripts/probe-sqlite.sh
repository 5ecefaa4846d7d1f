#!/usr/bin/env bash
# The page-cache measurement of BENCHMARKS.md: uprobes on SQLite's pcache1TruncateUnsafe
# (the walk of the whole page cache at a commit) and unixRead (a read of the OS file
# cache), entry and return, over a whole syncevo-bench run of ours; prints how many calls
# and how long they took in all. Compare builds with another cache_size to weigh the two.
#
#   scripts/probe-sqlite.sh [CONTACTS]     # needs perf (Debian: linux-perf)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
cargo build --release -p syncml-server -p conformance
bin=$(realpath target/release/syncml-server)
work=$(mktemp -d /tmp/probe-sqlite.XXXXXX)
group=probe_syncml_$$
cleanup() { perf probe -q -d "$group:*" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for f in pcache1TruncateUnsafe unixRead; do
    perf probe -q -x "$bin" -a "$group:$f=$f" -a "$group:${f}_ret=$f%return"
done
perf record -e "$group:*" -a -o "$work/perf.data" 2>/dev/null &
rec=$!
sleep 1
target/release/syncevo-bench --server-bin "$bin" --servers ours --contacts "$N" \
    --dir "$work/run" 2>&1 | grep -E '^\| [0-9]+ \| slow sync down' || true
kill -INT $rec; wait $rec || true
perf script -i "$work/perf.data" -F tid,time,event 2>/dev/null | python3 -c '
import sys, collections
start, total, calls = {}, collections.Counter(), collections.Counter()
for line in sys.stdin:
    tid, t, ev = line.split()[:3]
    t = float(t.rstrip(":")); name = ev.rstrip(":").split(":")[1]
    base = name.replace("__return", "").replace("_ret", "")
    if name.endswith("__return") or name.endswith("_ret"):
        if (tid, base) in start:
            total[base] += t - start.pop((tid, base)); calls[base] += 1
    else:
        start[(tid, base)] = t
for f in calls:
    print(f"{f}: {calls[f]} calls, {total[f] * 1000:.1f} ms in all")
'
