# Sourced by bin/test: the browser tests (tests/test_browser.py) drive Debian's chromium through
# Playwright for Python. Never `playwright install`: it downloads a browser build and fails offline.
source "$(dirname "${BASH_SOURCE[0]}")/_apt.sh"
colony_apt_need /usr/bin/chromium chromium "for the browser tests (apt-get, ~500 MB, about 30 s)" \
  "the browser tests will fail"
