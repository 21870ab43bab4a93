#!/usr/bin/env bash
# Start a private Apache in the foreground serving one WSGI application at /: the checkout's
# build, configured and run by mod_wsgi_rs-express start-server (python/mod_wsgi_rs/), the
# same code that runs a pip-installed build, so a private server is set up one way only.
#
#   tools/run.sh                      (usually through `make run`)
#
# Environment:
#   APP       the WSGI script (default examples/hello.wsgi)
#   PORT      port on 127.0.0.1 (default 8000)
#   SO        the module to load (default target/release/libmod_wsgi_rs.so)
#   MPM       event (default), worker or prefork
#   LOGLEVEL  Apache LogLevel (default "warn wsgi_rs:info")
#   PYTHON    the Python the module is linked against (default /usr/bin/python3.11)
#   EXPRESS_ARGS  more start-server options, e.g. "--reload-on-changes --processes 2"
#
# The error log goes to this terminal's stderr and the access log to its stdout; Ctrl-C
# stops Apache and its daemon processes. The system Apache configuration is neither read
# nor touched.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

APP=${APP:-examples/hello.wsgi}
PORT=${PORT:-8000}
SO=${SO:-target/release/libmod_wsgi_rs.so}
MPM=${MPM:-event}
LOGLEVEL=${LOGLEVEL:-warn wsgi_rs:info}
PYTHON=${PYTHON:-/usr/bin/python3.11}

[[ -f $SO ]] || { echo "run: $SO not found (run 'make build')" >&2; exit 1; }

# shellcheck disable=SC2086 # EXPRESS_ARGS is a list of options
exec env PYTHONPATH="$PWD/python" MOD_WSGI_RS_SO="$(realpath -- "$SO")" \
    "$PYTHON" -m mod_wsgi_rs.express start-server "$APP" --port "$PORT" --mpm "$MPM" \
    --log-level "$LOGLEVEL" --log-to-terminal --access-log ${EXPRESS_ARGS:-}
