#!/usr/bin/env bash
# The profiles behind BENCHMARKS.md's "where the step's time goes": `perf record` attached
# to our server for the SyncEvolution client's slow sync down only (syncevo-bench, ours
# only), then the share of the samples under each named frame (inclusive).
#
#   scripts/profile-download.sh [CONTACTS] [FRAME ...]
#
# Needs perf (Debian: linux-perf) and what scripts/bench-syncevolution.sh needs. FRAMEs are
# substrings of function names (default: the parts BENCHMARKS.md names).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}; shift || true
frames=("$@")
((${#frames[@]})) || frames=(continue_pkg4 start_pkg4 "Tx>::map_put" "Tx>::items_get"
    note_delivered "codec::decode" "sqlite::exec" pcache1Truncate unixRead clear_page_erms
    exc_page_fault mi_page_free_list_extend "http::serve")
cargo build --release -p syncml-server -p conformance
work=$(mktemp -d /tmp/profile-download.XXXXXX)
trap 'kill $bench 2>/dev/null || true; rm -rf "$work"' EXIT
target/release/syncevo-bench --server-bin target/release/syncml-server --servers ours \
    --contacts "$N" --dir "$work/run" >"$work/out" 2>"$work/err" &
bench=$!
until grep -q 'two-way' "$work/err" 2>/dev/null; do sleep 0.1; kill -0 $bench; done
pid=$(pgrep -f -- "--data $work/run/" | head -1)
perf record -F 1999 --call-graph dwarf,32768 -p "$pid" -o "$work/perf.data" 2>/dev/null &
perf=$!
until grep -q 'slow sync down' "$work/err" 2>/dev/null; do sleep 0.1; kill -0 $bench 2>/dev/null || break; done
kill -INT $perf; wait $perf || true
wait $bench
grep 'slow sync down' "$work/err"
perf script -i "$work/perf.data" -F ip,sym 2>/dev/null | python3 -c '
import sys
frames = sys.argv[1:]
samples, cur = [], []
for line in sys.stdin:
    if not line.strip():
        if cur: samples.append(cur); cur = []
    else:
        cur.append(line.strip())
if cur: samples.append(cur)
print(f"{len(samples)} samples at 1999 Hz")
for f in frames:
    n = sum(1 for s in samples if any(f in x for x in s))
    print(f"{100 * n / max(len(samples), 1):6.2f} %  {f}")
' "${frames[@]}"
