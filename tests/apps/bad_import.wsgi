# A WSGI script that fails while it is being loaded (tests/bad_apps.rs).
raise LookupError('bad-at-import')


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'never']
