# Sourced by bin/up and bin/test: make sure .venv exists and holds what pyproject.toml asks for.
# Idempotent: a stamp of pyproject.toml's hash skips pip when nothing changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${COLONY_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

if [ ! -x "$VENV/bin/python" ]; then
  echo "colony: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.colony-installed"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/bin/_bootstrap.sh" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "colony: installing Python packages into .venv (first run or pyproject.toml changed)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  # The CPU build of torch first (a local wheel on these machines); anything that depends on
  # torch would otherwise pull a multi-GB CUDA build.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[dev]"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
