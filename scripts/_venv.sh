# Sourced by the other scripts: create or refresh .venv so a fresh clone needs only Python 3.11+.
# Re-installs when pyproject.toml changes (a stamp holds its hash).
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.bulkops-stamp"
WANT=$(cat "$ROOT/pyproject.toml" | "$VENV/bin/python" -c 'import hashlib,sys;print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "bulkops: installing into $VENV (first run or pyproject.toml changed)…" >&2
    if ! "$VENV/bin/python" -m pip install -e "$ROOT[dev]" >"$VENV/install.log" 2>&1; then
        cat "$VENV/install.log" >&2
        exit 1
    fi
    echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
