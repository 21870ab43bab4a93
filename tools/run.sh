#!/usr/bin/env bash
# Start a private Apache in the foreground serving one WSGI application at /.
#
#   tools/run.sh                      (usually through `make run`)
#
# Environment:
#   APP       the WSGI script (default examples/hello.wsgi)
#   PORT      port on 127.0.0.1 (default 8000)
#   SO        the module to load (default target/release/libmod_wsgi_rs.so)
#   MPM       event (default), worker or prefork
#   LOGLEVEL  Apache LogLevel (default "warn wsgi_rs:info")
#
# Everything Apache writes lives in a fresh directory under /tmp; the error log
# goes to this terminal's stderr and the access log to its stdout. Ctrl-C stops
# Apache. The system Apache configuration is neither read nor touched.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

APP=${APP:-examples/hello.wsgi}
PORT=${PORT:-8000}
SO=${SO:-target/release/libmod_wsgi_rs.so}
MPM=${MPM:-event}
LOGLEVEL=${LOGLEVEL:-warn wsgi_rs:info}
HTTPD=${HTTPD:-/usr/sbin/apache2}
MODULES=/usr/lib/apache2/modules

die() { echo "run: $*" >&2; exit 1; }

[[ -x $HTTPD ]] || die "$HTTPD not found (run 'make deps')"
[[ -f $SO ]] || die "$SO not found (run 'make build')"
[[ -f $APP ]] || die "no such WSGI script: $APP"
[[ $PORT =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$PORT'"
case $MPM in event|worker|prefork) ;; *) die "MPM must be event, worker or prefork" ;; esac

so=$(realpath -- "$SO")
app=$(realpath -- "$APP")

tmp=$(mktemp -d /tmp/mod_wsgi_rs-run.XXXXXX)
chmod 755 "$tmp"
mkdir -p "$tmp/run" "$tmp/htdocs"

user_lines=
if [[ $(id -u) == 0 ]]; then
    # Apache's children run as www-data, and Python in them reads the script.
    user_lines=$'User www-data\nGroup www-data'
    chown www-data:www-data "$tmp/run"
    if ! runuser -u www-data -- test -r "$app"; then
        mkdir -p "$tmp/app"
        cp -- "$app" "$tmp/app/"
        chmod -R a+rX "$tmp/app"
        echo "run: www-data cannot read $app;" >&2
        echo "run: serving a copy, $tmp/app/$(basename -- "$app") (other files next to the" >&2
        echo "run: original are not copied, and edits to the original are not seen)." >&2
        app=$tmp/app/$(basename -- "$app")
    fi
fi
appdir=$(dirname -- "$app")
# Quote the script path for Apache only when it needs quoting.
alias_target=$app
[[ $app =~ [[:space:]] ]] && alias_target="\"$app\""

cat > "$tmp/httpd.conf" <<EOF
# Written by tools/run.sh
ServerRoot "$tmp"
ServerName 127.0.0.1
Listen 127.0.0.1:$PORT
PidFile "$tmp/run/httpd.pid"
DefaultRuntimeDir "$tmp/run"
Mutex file:$tmp/run default
$user_lines

LoadModule mpm_${MPM}_module $MODULES/mod_mpm_${MPM}.so
LoadModule authz_core_module $MODULES/mod_authz_core.so
LoadModule wsgi_rs_module "$so"

ErrorLog /dev/stderr
LogLevel $LOGLEVEL
LogFormat "%h %l %u %t \"%r\" %>s %b %D" timed
CustomLog /dev/stdout timed

DocumentRoot "$tmp/htdocs"
<Directory />
    Require all denied
</Directory>
<Directory "$appdir">
    Require all granted
</Directory>

WSGIScriptAlias / $alias_target
EOF

echo "mod_wsgi_rs: serving $app"
echo "  at        http://127.0.0.1:$PORT/"
echo "  config    $tmp/httpd.conf"
echo "  Ctrl-C stops Apache; remove $tmp afterwards if you like."
echo

exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C \
    "$HTTPD" -f "$tmp/httpd.conf" -DFOREGROUND
