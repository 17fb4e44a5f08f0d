# python.sh - sourced by the tests that need torch / transformers (tests/hf, tests/torch):
# sets PY to the venv of tools/install-hf-env, or skips (exit 77) saying why.
#   need_python MODULE...
NVWA_HF_VENV=${NVWA_HF_VENV:-/opt/nvwa/hf-venv}
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HUB_DISABLE_TELEMETRY=1 TRANSFORMERS_VERBOSITY=error
export TOKENIZERS_PARALLELISM=false
need_python() {
    PY="$NVWA_HF_VENV/bin/python"
    if [ ! -x "$PY" ]; then
        local why="no venv at $NVWA_HF_VENV (tools/install-hf-env makes it)"
        [ -f "$NVWA_HF_VENV.failed" ] && why="tools/install-hf-env failed: $(cat "$NVWA_HF_VENV.failed")"
        echo "skip: $why"
        exit 77
    fi
    local mods
    mods=$(IFS=,; echo "$*")
    if ! "$PY" -c "import ${mods}" > /dev/null 2>&1; then
        echo "skip: $PY cannot import $*"
        exit 77
    fi
}
