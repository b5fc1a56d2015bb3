# Sourced by bin/test (and bin/up): the process tier of the sandbox runs programs under
# bubblewrap (Debian package `bubblewrap`); setpriv comes with util-linux.
# Idempotent: does nothing when /usr/bin/bwrap exists.
if [ ! -x /usr/bin/bwrap ]; then
  if command -v apt-get >/dev/null 2>&1; then
    _colony_sudo=""
    if [ "$(id -u)" -ne 0 ]; then _colony_sudo="sudo -n"; fi
    echo "colony: installing bubblewrap for the process sandbox (apt-get, ~1 MB)" >&2
    if ! { $_colony_sudo apt-get update -qq \
           && DEBIAN_FRONTEND=noninteractive $_colony_sudo apt-get install -y -qq bubblewrap >/dev/null; }; then
      echo "colony: could not install bubblewrap; the process sandbox is unavailable. Install it with: sudo apt-get install -y bubblewrap" >&2
    fi
    unset _colony_sudo
  else
    echo "colony: /usr/bin/bwrap is missing and apt-get is not available; the process sandbox is unavailable" >&2
  fi
fi
