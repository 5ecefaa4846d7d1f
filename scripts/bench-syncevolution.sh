#!/usr/bin/env bash
# The "SyncEvolution client: our server vs SyncEvolution's server" figures of BENCHMARKS.md:
# slow sync up, a 10-change two-way sync and a fresh client's slow sync down, against our
# syncml-server and against SyncEvolution's own server, on the same generated contacts.
#
#   scripts/bench-syncevolution.sh                      # 1,000 and 10,000 contacts
#   scripts/bench-syncevolution.sh --contacts 1000      # any syncevo-bench options
#
# Needs the Debian packages syncevolution syncevolution-http python3-twisted dbus gcc
# libc6-dev. Prints a Markdown table; the exit status is non-zero if a sync failed or
# the data differed after a step. SYNCML_KEEP_TMP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p syncml-server -p conformance
exec target/release/syncevo-bench --server-bin target/release/syncml-server "$@"
