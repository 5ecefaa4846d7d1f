#!/usr/bin/env bash
# Short fuzz run of every target (stable toolchain, RUSTC_BOOTSTRAP=1).
# Usage: scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --quiet
fi
cd fuzz
for t in wbxml_decode xml_decode message_roundtrip content_convert; do
    mkdir -p "corpus/$t"
    cp -n seeds/* "corpus/$t/" 2>/dev/null || true
    echo "fuzz-smoke: $t for ${secs}s"
    log=$(mktemp)
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 >"$log" 2>&1 || true
    grep -E '^(#[0-9]+\s+DONE|Done|==|SUMMARY)' "$log" || true
    # On a panic, the message (first 40 lines) so CI's log alone explains the failure.
    grep -A40 -m1 'panicked' "$log" | cut -c1-400 || true
    if ! grep -q '^Done [0-9]* runs' "$log" && ! ls "artifacts/$t"/crash-* >/dev/null 2>&1; then
        echo "fuzz-smoke: $t did not run to the end:" >&2
        tail -30 "$log" >&2
        exit 1
    fi
    rm -f "$log"
    # cargo fuzz exits non-zero on a crash; pipefail is bypassed by the grep, so check artifacts.
    if ls "artifacts/$t"/crash-* >/dev/null 2>&1; then
        echo "fuzz-smoke: $t found a crash:" >&2
        for f in "artifacts/$t"/crash-*; do
            echo "$f (base64; reproduce: cargo fuzz run $t $f):" >&2
            base64 -w0 "$f" >&2
            echo >&2
        done
        exit 1
    fi
done
echo "fuzz-smoke: no crashes"
