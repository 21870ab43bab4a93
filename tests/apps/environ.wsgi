# Reports the WSGI environ as JSON: values (JSON-able ones as they are, others as
# repr) plus the Python type name of every value.
import json


def application(environ, start_response):
    values = {}
    types = {}
    for k, v in environ.items():
        types[k] = type(v).__name__
        if isinstance(v, (str, bool, int, float)) or v is None:
            values[k] = v
        elif isinstance(v, tuple) and all(isinstance(x, int) for x in v):
            values[k] = list(v)
        else:
            values[k] = repr(v)
    body = json.dumps({'environ': values, 'types': types}).encode('utf-8')
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
