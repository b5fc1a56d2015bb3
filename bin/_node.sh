# Sourced by bin/test: the Node tools tests run as separate processes (anvil, a local EVM node),
# installed from tools/node/package-lock.json and exported as COLONY_NODE_TOOLS.
# Idempotent: a stamp of the lock file's hash skips npm when nothing changed. Install scripts are
# not run (--ignore-scripts): each binary comes from the registry in its per-platform package,
# and nothing is downloaded from anywhere else.
colony_node_tools="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tools/node"
if ! command -v npm >/dev/null 2>&1; then
  echo "colony: npm not found — install Node.js 20 or newer with npm (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
colony_node_stamp="$colony_node_tools/node_modules/.colony-installed"
colony_node_want="$(cat "$colony_node_tools/package.json" "$colony_node_tools/package-lock.json" \
  "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$colony_node_stamp" ] || [ "$(cat "$colony_node_stamp")" != "$colony_node_want" ]; then
  echo "colony: installing Node tools into tools/node/node_modules (first run or package-lock.json changed)" >&2
  (cd "$colony_node_tools" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$colony_node_want" > "$colony_node_stamp"
fi
export COLONY_NODE_TOOLS="$colony_node_tools"
unset colony_node_stamp colony_node_want colony_node_tools
