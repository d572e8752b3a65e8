#!/usr/bin/env bash
# One command from a fresh machine: set up the virtual environment and the models, then
#   ./dev.sh demo   anonymize a generated sample clip and photo with the embedded CPU engine
#   ./dev.sh test   lint, type-check and run the test suite
# Safe to run again: every step skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${CITYVEIL_VENV:-.venv}
PYTHON=${PYTHON:-python3}

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
            # Debian's python3 ships venv separately.
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        fi
        "$PYTHON" -m venv "$VENV"
    fi
    # Install again only when the dependencies or the extras asked for changed.
    local stamp="$VENV/.cityveil-installed" want
    want="$(sha256sum pyproject.toml | cut -c1-16) $1"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".$1"
        echo "$want" >"$stamp"
    fi
    "$VENV/bin/cityveil" models pull >/dev/null
}

case "${1:-}" in
    demo)
        ensure_venv ""
        exec "$VENV/bin/cityveil" demo -o cityveil-demo
        ;;
    test)
        ensure_venv "[dev]"
        "$VENV/bin/ruff" check .
        "$VENV/bin/ruff" format --check .
        "$VENV/bin/mypy"
        exec "$VENV/bin/pytest" -q
        ;;
    *)
        echo "usage: ./dev.sh demo|test" >&2
        exit 2
        ;;
esac
