# Sourced by bin/test: the process tier of the sandbox runs programs under bubblewrap (Debian
# package `bubblewrap`); setpriv comes with util-linux.
source "$(dirname "${BASH_SOURCE[0]}")/_apt.sh"
colony_apt_need /usr/bin/bwrap bubblewrap "for the process sandbox (apt-get, ~1 MB)" \
  "the process sandbox is unavailable"
