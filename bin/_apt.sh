# Sourced by bin/_browser.sh and bin/_sandbox.sh: install a Debian package when its binary is
# missing, idempotently; a failure is reported with the manual command and does not stop the caller.
# Usage: colony_apt_need BINARY PACKAGE "why it is needed (size)" "what breaks without it"
colony_apt_need() {
  local binary="$1" package="$2" why="$3" without="$4" sudo=""
  [ -x "$binary" ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "colony: $binary is missing and apt-get is not available; $without" >&2
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo -n"; fi
  echo "colony: installing $package $why" >&2
  if ! { $sudo apt-get update -qq \
         && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$package" >/dev/null; }; then
    echo "colony: could not install $package; $without. Install it with: sudo apt-get install -y $package" >&2
  fi
}
