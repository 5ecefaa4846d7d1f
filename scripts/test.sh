#!/usr/bin/env bash
# The whole test suite: formatting, lints, every crate's tests (including the interop
# tests against libwbxml's wbxml2xml/xml2wbxml) and a short fuzz run.
# Installs the Debian peers it needs when run as root; fails loudly when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v wbxml2xml >/dev/null 2>&1 || need_pkgs+=(libwbxml2-utils)
command -v syncevolution >/dev/null 2>&1 || need_pkgs+=(syncevolution)
command -v syncevo-http-server >/dev/null 2>&1 || need_pkgs+=(syncevolution-http)
/usr/bin/python3 -c 'import twisted' >/dev/null 2>&1 || need_pkgs+=(python3-twisted)
command -v dbus-daemon >/dev/null 2>&1 || need_pkgs+=(dbus)
command -v cc >/dev/null 2>&1 || need_pkgs+=(gcc libc6-dev)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkgs+=(postgresql)
if ((${#need_pkgs[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "test.sh: installing ${need_pkgs[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
    else
        echo "test.sh: missing Debian packages: ${need_pkgs[*]} (apt-get install them)" >&2
        exit 1
    fi
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --quiet
RUSTDOCFLAGS="-D warnings" cargo doc -p syncml-core -p syncml-client -p syncml-server --no-deps --quiet
# syncml-core stays free of I/O runtimes and databases.
if cargo tree -p syncml-core -e normal | grep -E 'tokio|hyper|rusqlite|postgres'; then
    echo "test.sh: syncml-core must not depend on tokio/hyper/rusqlite" >&2
    exit 1
fi
scripts/fuzz-smoke.sh "${FUZZ_SECONDS:-15}"
echo "test.sh: all tests passed"
