#!/bin/bash
# Ahead-of-time compilation for mod_wsgi_rs (`make precompile`): compiles the standard
# library, the site directories of the Python that runs the application (a virtual
# environment's when VENV is given) and the application's own directories at each
# optimisation level, into the bytecode cache the Apache processes read, so that no
# process compiles them from source. Run as root, from a deploy script, after every
# change to the code; Python still recompiles anything whose source changed later.
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

levels=${LEVELS:-1 2}
prefix=${PYCACHE_PREFIX:-/var/run/apache2/wsgi_rs-pycache}
users=${CACHE_USERS:-www-data}
python=/usr/bin/python3.11
if [[ -n ${VENV:-} ]]; then
    python=$VENV/bin/python
fi
[[ -x $python ]] || { echo "precompile: $python is not an executable Python" >&2; exit 1; }

dirs=()
if [[ ${STDLIB:-yes} == yes ]]; then
    # Paths as Python puts them on sys.path: the cache is keyed by them.
    mapfile -t dirs < <("$python" -I -c '
import os, site, sysconfig
for d in [sysconfig.get_paths()["stdlib"], *site.getsitepackages()]:
    if os.path.isdir(d):
        print(d)')
fi
for d in ${APP_DIRS:-}; do
    [[ -d $d ]] || { echo "precompile: APP_DIRS: $d is not a directory" >&2; exit 1; }
    dirs+=("$d")
done
[[ ${#dirs[@]} -gt 0 ]] || { echo "precompile: nothing to compile (STDLIB=no and no APP_DIRS)" >&2; exit 1; }

opts=(-q -j 0)
for level in $levels; do
    [[ $level == [012] ]] || { echo "precompile: LEVELS: '$level' is not 0, 1 or 2" >&2; exit 1; }
    opts+=(-o "$level")
done

compile() {
    # Files that are not valid Python 3.11 (test data, Python 2 leftovers) are reported
    # by compileall and skipped; Python would fail on them at import time as well.
    if ! "$python" "$@" -m compileall "${opts[@]}" "${dirs[@]}"; then
        echo "precompile: some files could not be compiled (listed above); the rest were" >&2
    fi
}

if [[ $prefix == Off || $prefix == off ]]; then
    compile -I
    echo "precompile: levels $levels compiled into __pycache__ beside: ${dirs[*]}"
    exit 0
fi
[[ $prefix == /* ]] || { echo "precompile: PYCACHE_PREFIX must be absolute or Off" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "precompile: run as root: each user's directory is handed to that user" >&2; exit 1; }
# As the Apache parent creates them: the prefix root's and closed to others' writes,
# each user's directory that user's alone (mode 0700).
[[ -d $prefix ]] || install -d -m 0755 -o root -g root "$prefix"
for user in $users; do
    uid=$(id -u "$user") && gid=$(id -g "$user") || { echo "precompile: no user $user" >&2; exit 1; }
    dir=$prefix/$user
    # Created as the user's (running processes keep using it meanwhile); what
    # compileall writes as root is handed over afterwards.
    [[ -d $dir ]] || install -d -m 0700 -o "$uid" -g "$gid" "$dir"
    compile -I -X pycache_prefix="$dir"
    chown -R "$uid:$gid" "$dir"
    echo "precompile: levels $levels compiled into $dir for ${dirs[*]}"
done
