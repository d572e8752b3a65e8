#!/usr/bin/env bash
# One command from a fresh machine: set up the virtual environment and the models, then
#   ./dev.sh demo   anonymize a generated sample clip and photo with the embedded CPU engine
#   ./dev.sh test   lint, type-check and run the test suite
# Safe to run again: every step skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${CITYVEIL_VENV:-.venv}
PYTHON=${PYTHON:-python3}
# Debian packages the tests need: GStreamer's RTSP server and plugins (x264enc is in -ugly, h264parse in
# -bad) and what PyGObject (the `rtsp` extra) builds against.
# PostgreSQL: the store's tests run against it as well as SQLite. g++: the GPU mask kernels' tests compile
# their CUDA source for the host where there is no GPU.
TEST_PACKAGES=(gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad libgirepository1.0-dev libcairo2-dev pkg-config gcc
    python3-dev postgresql g++)

ensure_debian_packages() {
    local missing=() package
    for package in "$@"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null; then
        echo "dev.sh: please install the equivalents of these Debian packages: ${missing[*]}" >&2
        return 1
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "dev.sh: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The distribution's PostgreSQL cluster, started if it is down, with a role that may create the throwaway
# databases the tests make. Sets CITYVEIL_TEST_DATABASE_URL (kept when already set: another server).
ensure_postgres() {
    [ -n "${CITYVEIL_TEST_DATABASE_URL:-}" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "dev.sh: not root, PostgreSQL not started: its tests skip (set CITYVEIL_TEST_DATABASE_URL)" >&2
        return 0
    fi
    local version name port status
    read -r version name port status _ < <(pg_lsclusters --no-header | head -1)
    if [ -z "${version:-}" ]; then
        version=$(ls /usr/lib/postgresql | sort -V | tail -1) name=main
        pg_createcluster "$version" "$name" >/dev/null
        read -r version name port status _ < <(pg_lsclusters --no-header | head -1)
    fi
    [ "$status" = online ] || pg_ctlcluster "$version" "$name" start
    local psql=(runuser -u postgres -- psql -p "$port" -qtA)
    "${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'cityveil_test'" | grep -q 1 ||
        "${psql[@]}" -c "CREATE ROLE cityveil_test LOGIN CREATEDB PASSWORD 'cityveil-test'"
    export CITYVEIL_TEST_DATABASE_URL="postgresql+psycopg://cityveil_test:cityveil-test@127.0.0.1:$port/postgres"
}

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

# The CPU Triton server of nvidia-pytriton pins numpy<2, so it gets its own environment; the package is
# installed there too, because the python-backend models import orchestrator and ONNX Runtime from it.
ensure_triton_env() {
    local env=${CITYVEIL_TRITON_ENV:-.venv-triton}
    [ -x "$env/bin/python" ] || "$PYTHON" -m venv "$env"
    local stamp="$env/.cityveil-installed" want
    want="$(sha256sum pyproject.toml | cut -c1-16)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        "$env/bin/python" -m pip install -q --disable-pip-version-check -e ".[triton-server]"
        echo "$want" >"$stamp"
    fi
}

case "${1:-}" in
    demo)
        ensure_venv ""
        exec "$VENV/bin/cityveil" demo -o cityveil-demo
        ;;
    test)
        ensure_debian_packages "${TEST_PACKAGES[@]}"
        ensure_postgres
        ensure_venv "[dev]"
        ensure_triton_env
        export CITYVEIL_REQUIRE_TRITON=1 # the Triton tests must run here, not skip
        # The RTSP tests skip where GStreamer is missing; here it was just installed, so that is an error.
        "$VENV/bin/python" -c 'import sys; from orchestrator.dataplane.live.rtsp import rtsp_unavailable_reason as why; sys.exit(why())'
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
