# Must never run (tests/security.rs): it sits where no WSGIScriptAlias and no
# permitted wsgi-script handler reaches it. If it is ever executed, loading it leaves a
# marker file behind, and so does calling it.
import os

_MARKER = os.path.join('@@STATE_DIR@@', 'executed-@@NAME@@')
with open(_MARKER, 'a') as f:
    f.write('loaded\n')


def application(environ, start_response):
    with open(_MARKER, 'a') as f:
        f.write('called\n')
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'SCRIPT WAS EXECUTED']
