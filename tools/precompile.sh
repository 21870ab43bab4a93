#!/bin/bash
# `make precompile`: mod_wsgi_rs-express precompile run from the checkout, so that a
# server installed with `make install` can precompile without the pip package. Compiles
# the standard library, the site directories of the Python that runs the application (a
# virtual environment's when VENV is given) and the application's directories at each
# optimisation level into the bytecode cache the Apache processes read. As root, from a
# deploy script, after every change to the code (README, "WSGIPythonOptimize in practice").
#
#   LEVELS          optimisation levels to compile for (1 2)
#   PYCACHE_PREFIX  WSGIPythonPycachePrefix as configured (/var/run/apache2/wsgi_rs-pycache,
#                   the default under Debian's DefaultRuntimeDir); Off: into __pycache__
#                   beside the sources, for servers configured with Off
#   CACHE_USERS     the users whose directories to fill (www-data): Apache's User, and
#                   the user= of each daemon group that runs the application
#   VENV            the virtual environment of WSGIPythonHome or python-home= (none)
#   APP_DIRS        the application's directories, as on sys.path (none)
#   STDLIB          yes: also the standard library and the Python's site directories
set -euo pipefail
[[ $# -eq 0 ]] || { echo "precompile: takes no arguments; set LEVELS, PYCACHE_PREFIX, ... (see $0)" >&2; exit 2; }

checkout=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=/usr/bin/python3.11
[[ -z ${VENV:-} ]] || python=$VENV/bin/python
args=(precompile --levels ${LEVELS:-1 2} --python "$python")
[[ -z ${PYCACHE_PREFIX:-} ]] || args+=(--pycache-prefix "$PYCACHE_PREFIX")
for user in ${CACHE_USERS:-www-data}; do args+=(--cache-user "$user"); done
for dir in ${APP_DIRS:-}; do args+=(--app-dir "$dir"); done
[[ ${STDLIB:-yes} == yes ]] || args+=(--no-stdlib)
exec /usr/bin/python3 -I -c 'import sys
sys.path.insert(0, sys.argv.pop(1))
from mod_wsgi_rs.express import main
sys.exit(main(sys.argv[1:]))' "$checkout/python" "${args[@]}"
