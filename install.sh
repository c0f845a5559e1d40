#!/bin/sh
# Koretex node installer: turns this machine into a node that earns for your account.
#
#   curl -fsSL https://COORDINATOR/install.sh | sh -s -- --token TOKEN --coordinator URL
#
# Options:
#   --token TOKEN          one-time enrollment token from your account (binds this node to it)
#   --coordinator URL      the coordinator this node serves
#   --model PATH_OR_NAME   the weights to serve: a GGUF file, an MLX folder or a catalogue name
#   --source SPEC          install the agent from SPEC instead of PyPI: a source directory
#                          (the right extras are added) or a complete pip requirement
#   --uninstall            stop the agent and remove everything this script installed
#
# Environment: KORETEX_HOME (default ~/.koretex) holds the agent's virtual environment;
# KORETEX_PYTHON names the Python (3.11 or newer) to build it with; KORETEX_INSTALL_WAIT_S is
# how long to wait for the node to connect (default 120). pip's own PIP_* variables apply.
#
# Running it again upgrades the agent in place and keeps the node's key, so the node keeps its
# identity (and the account it earns for). The account's own secrets never reach this machine:
# the node makes its own key, and the token only says which account it joins.
set -eu

say() { printf 'koretex: %s\n' "$*"; }
die() {
    printf 'koretex: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat <<'EOF'
usage: install.sh --token TOKEN --coordinator URL [--model PATH_OR_NAME] [--source SPEC]
       install.sh --uninstall

  --token TOKEN          one-time enrollment token from your account
  --coordinator URL      the coordinator this node serves
  --model PATH_OR_NAME   the weights to serve (a GGUF file, an MLX folder or a catalogue name)
  --source SPEC          install the agent from a source directory or a pip requirement
  --uninstall            stop the agent and remove everything this script installed
EOF
}

TOKEN=""
COORDINATOR=""
MODEL=""
SOURCE=""
UNINSTALL=0

parse() {
    while [ "$#" -gt 0 ]; do
        case "$1" in
            --token | --coordinator | --model | --source)
                [ "$#" -ge 2 ] || die "$1 needs a value (see --help)"
                case "$1" in
                    --token) TOKEN=$2 ;;
                    --coordinator) COORDINATOR=$2 ;;
                    --model) MODEL=$2 ;;
                    --source) SOURCE=$2 ;;
                esac
                shift 2
                ;;
            --token=*) TOKEN=${1#*=}; shift ;;
            --coordinator=*) COORDINATOR=${1#*=}; shift ;;
            --model=*) MODEL=${1#*=}; shift ;;
            --source=*) SOURCE=${1#*=}; shift ;;
            --uninstall) UNINSTALL=1; shift ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown option $1 (see --help)" ;;
        esac
    done
}

locate() {
    [ -n "${HOME:-}" ] || die "HOME is not set"
    KORETEX_HOME=${KORETEX_HOME:-$HOME/.koretex}
    VENV=$KORETEX_HOME/venv
    KORETEX=$VENV/bin/koretex
}

check_platform() {
    OS=$(uname -s)
    ARCH=$(uname -m)
    case "$OS" in
        Darwin)
            [ "$ARCH" = arm64 ] || die "Koretex nodes on macOS need Apple Silicon (this Mac is $ARCH)"
            memory=$(sysctl -n hw.memsize 2>/dev/null || echo 0)
            [ "$memory" -ge 17179869184 ] ||
                die "Koretex nodes on macOS need 16 GB of memory or more (this Mac has $((memory / 1073741824)) GB)"
            EXTRA=mlx,llama  # MLX for MLX weights, llama.cpp (Metal) for GGUF
            ;;
        Linux)
            case "$ARCH" in
                x86_64 | amd64 | aarch64 | arm64) ;;
                *) die "Koretex nodes on Linux need x86_64 or arm64 (this machine is $ARCH)" ;;
            esac
            EXTRA=llama
            ;;
        *) die "Koretex nodes run on macOS (Apple Silicon) and Linux, not on $OS" ;;
    esac
}

python_ok() {
    "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' \
        </dev/null >/dev/null 2>&1
}

find_python() {
    if [ -n "${KORETEX_PYTHON:-}" ]; then
        python_ok "$KORETEX_PYTHON" ||
            die "KORETEX_PYTHON=$KORETEX_PYTHON is not a Python 3.11 or newer with venv"
        PYTHON=$KORETEX_PYTHON
        return 0
    fi
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            PYTHON=$(command -v "$candidate")
            return 0
        fi
    done
    if [ "$OS" = Darwin ]; then
        die "Koretex needs Python 3.11 or newer: install it from https://www.python.org/downloads/macos/ (or: brew install python@3.12), then run this again"
    fi
    die "Koretex needs Python 3.11 or newer with venv: e.g. sudo apt-get install python3 python3-venv (Debian, Ubuntu) or sudo dnf install python3, then run this again"
}

requirement() {
    if [ -z "$SOURCE" ]; then
        REQUIREMENT="koretex[agent,${EXTRA}]"
    elif [ -d "$SOURCE" ]; then
        REQUIREMENT="${SOURCE}[agent,${EXTRA}]"
    else
        REQUIREMENT=$SOURCE
    fi
}

install_agent() {
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c '' </dev/null >/dev/null 2>&1; then
        say "upgrading the agent in $VENV"
    else
        find_python
        say "creating $VENV with $PYTHON"
        rm -rf "$VENV"
        mkdir -p "$KORETEX_HOME"
        "$PYTHON" -m venv "$VENV" </dev/null || die "could not create a virtual environment at $VENV"
    fi
    requirement
    if [ "$EXTRA" = llama ]; then
        say "installing $REQUIREMENT (without a prebuilt wheel, llama.cpp compiles: a few minutes)"
    else
        say "installing $REQUIREMENT"
    fi
    # Koretex never loads llama.cpp's multimodal tools, tests or examples: don't build them.
    CMAKE_ARGS=${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF}
    # Nor its AMX kernels: a virtual machine may report AMX without granting its tile state, and
    # llama.cpp then dies of SIGILL on its first Q4_0/Q8_0 matrix product.
    if [ "$(uname -m)" = x86_64 ]; then
        CMAKE_ARGS="$CMAKE_ARGS -DCMAKE_C_FLAGS=-mno-amx-int8 -DCMAKE_CXX_FLAGS=-mno-amx-int8"
    fi
    export CMAKE_ARGS
    "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade \
        --upgrade-strategy only-if-needed --prefer-binary "$REQUIREMENT" </dev/null ||
        die "pip could not install $REQUIREMENT (llama.cpp needs a C/C++ compiler and cmake to build: e.g. sudo apt-get install build-essential cmake)"
    [ -x "$KORETEX" ] || die "the install did not provide $KORETEX"
}

configure() {
    set --
    if [ -n "$COORDINATOR" ]; then set -- "$@" --coordinator "$COORDINATOR"; fi
    if [ -n "$MODEL" ]; then set -- "$@" --model "$MODEL"; fi
    if [ -n "$TOKEN" ]; then set -- "$@" --enrollment-token "$TOKEN"; fi
    if [ "$#" -gt 0 ]; then
        "$KORETEX" config set "$@" </dev/null || die "could not write the agent's settings"
    fi
    say "settings are in $("$KORETEX" config path </dev/null)"
    model=$("$KORETEX" config get model </dev/null) || die "the agent's settings are invalid"
    [ -n "$model" ] || die "no model to serve: run this again with --model PATH_OR_NAME"
}

start() {
    "$KORETEX" service install </dev/null || die "could not start the agent (see above)"
    say "waiting for the node to load its model and connect"
    code=0
    "$KORETEX" status --wait "${KORETEX_INSTALL_WAIT_S:-120}" </dev/null || code=$?
    case "$code" in
        0) say "done: this machine serves Koretex. See how it does with: $KORETEX status" ;;
        78) die "the node could not start (see above): fix it and run this again" ;;
        *) say "the node has not connected yet; follow it with: $KORETEX status (logs: $KORETEX service logs)" ;;
    esac
}

install() {
    check_platform
    if [ ! -x "$KORETEX" ]; then
        [ -n "$TOKEN" ] || die "--token is needed for a first install: mint one from your account"
        [ -n "$COORDINATOR" ] || die "--coordinator is needed for a first install"
    fi
    install_agent
    configure
    start
}

uninstall() {
    if [ -x "$KORETEX" ] && "$KORETEX" service uninstall --purge </dev/null; then
        :
    else
        say "no working agent at $KORETEX: removing what is left of it"
        remove_leftovers
    fi
    rm -rf "$VENV"
    rmdir "$KORETEX_HOME" 2>/dev/null || true
    say "uninstalled: the agent is stopped and its files are gone"
}

remove_leftovers() {
    if [ "$(uname -s)" = Darwin ]; then
        launchctl bootout "gui/$(id -u)/com.koretex.agent" 2>/dev/null || true
        rm -f "$HOME/Library/LaunchAgents/com.koretex.agent.plist"
        rm -rf "$HOME/Library/Application Support/koretex" "$HOME/Library/Caches/koretex" \
            "$HOME/Library/Logs/Koretex"
    else
        unit=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user/koretex-agent.service
        if [ -f "$unit" ]; then
            systemctl --user disable --now koretex-agent.service 2>/dev/null || true
            rm -f "$unit"
        fi
        rm -rf "${XDG_CONFIG_HOME:-$HOME/.config}/koretex" \
            "${XDG_STATE_HOME:-$HOME/.local/state}/koretex" "${XDG_CACHE_HOME:-$HOME/.cache}/koretex"
    fi
}

main() {
    parse "$@"
    locate
    if [ "$UNINSTALL" = 1 ]; then
        uninstall
    else
        install
    fi
}

main "$@"
