# Conformance app: a script that fails while it is being loaded.
raise ImportError('planned failure while loading the script')


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'not reached']
