# Sourced by bin/test: the browser tests (tests/test_browser.py) drive Debian's chromium through
# Playwright for Python. Never `playwright install`: it downloads a browser build and fails offline.
# Idempotent: does nothing when /usr/bin/chromium exists.
if [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1; then
    _colony_sudo=""
    if [ "$(id -u)" -ne 0 ]; then _colony_sudo="sudo -n"; fi
    echo "colony: installing chromium for the browser tests (apt-get, ~500 MB, about 30 s)" >&2
    if ! { $_colony_sudo apt-get update -qq \
           && DEBIAN_FRONTEND=noninteractive $_colony_sudo apt-get install -y -qq chromium >/dev/null; }; then
      echo "colony: could not install chromium; the browser tests will fail. Install it with: sudo apt-get install -y chromium" >&2
    fi
    unset _colony_sudo
  else
    echo "colony: /usr/bin/chromium is missing and apt-get is not available; the browser tests will fail" >&2
  fi
fi
