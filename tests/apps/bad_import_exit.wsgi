# A WSGI script that calls sys.exit() while it is being loaded (tests/bad_apps.rs):
# the child must not exit.
import sys

sys.exit('bad-exit-at-import')


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'never']
