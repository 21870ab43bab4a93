# Reports the WSGI environ as JSON: {"app": callable name, "environ": values (JSON-able
# ones as they are, tuples of ints as lists, others as repr), "types": type names,
# "extra": facts about wsgi.input/wsgi.errors/wsgi.file_wrapper}.
import json


def _report(which, environ, start_response):
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
    inp = environ.get('wsgi.input')
    err = environ.get('wsgi.errors')
    extra = {
        'input_methods': [m for m in ('read', 'readline', 'readlines', '__iter__')
                          if hasattr(inp, m)],
        'errors_methods': [m for m in ('write', 'writelines', 'flush') if hasattr(err, m)],
        'file_wrapper_callable': callable(environ.get('wsgi.file_wrapper')),
        'apache_version_ints': isinstance(environ.get('apache.version'), tuple)
        and all(isinstance(x, int) for x in environ['apache.version']),
    }
    body = json.dumps({'app': which, 'environ': values, 'types': types,
                       'extra': extra}).encode('utf-8')
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]


def application(environ, start_response):
    return _report('application', environ, start_response)


def alt(environ, start_response):
    return _report('alt', environ, start_response)
