# Conformance app: reports the whole environ as JSON so the suite can compare it key by
# key. Plain values (str, bool, int, float, None, tuples of those) are given as they
# are; any other object is described by what an application can use on it.
import json

PLAIN = (str, bool, int, float, type(None))
PROBED = ('read', 'readline', 'readlines', '__iter__', 'write', 'writelines',
          'flush', 'close', 'fileno')


def describe(value):
    if isinstance(value, PLAIN):
        return type(value).__name__, value
    if isinstance(value, tuple) and all(isinstance(x, PLAIN) for x in value):
        return 'tuple', [x for x in value]
    usable = [name for name in PROBED if hasattr(value, name)]
    return 'object', {'callable': callable(value), 'has': usable}


def application(environ, start_response):
    report = {}
    for key, value in environ.items():
        kind, shown = describe(value)
        report[key] = {'type': kind, 'value': shown}
    body = json.dumps(report, sort_keys=True, indent=1).encode('ascii')
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
