# Conformance app: reads wsgi.input in the way PATH_INFO names and reports what each
# call returned. Short pieces are shown as text, long ones as length and digest.
import hashlib
import json
from urllib.parse import parse_qs


def show(piece):
    if not isinstance(piece, bytes):
        return 'not bytes: %s' % type(piece).__name__
    if len(piece) <= 80:
        return piece.decode('latin-1')
    return '%d bytes sha1=%s' % (len(piece), hashlib.sha1(piece).hexdigest())


def until_empty(call):
    pieces = []
    while True:
        piece = call()
        pieces.append(piece)
        if not piece or len(pieces) > 100000:
            return pieces


def application(environ, start_response):
    inp = environ['wsgi.input']
    mode = environ.get('PATH_INFO', '').strip('/')
    qs = parse_qs(environ.get('QUERY_STRING', ''))
    n = int(qs.get('n', ['7'])[0])
    if mode == 'echo':
        body = inp.read()
        start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                                  ('Content-Length', str(len(body)))])
        return [body]
    calls = []
    error = None
    try:
        if mode == 'read':
            calls = [inp.read(), inp.read()]
        elif mode == 'read-n':
            calls = until_empty(lambda: inp.read(n))
        elif mode == 'read-minus-1':
            calls = [inp.read(-1), inp.read(-1)]
        elif mode == 'read-none':
            calls = [inp.read(None)]
        elif mode == 'read-zero':
            calls = [inp.read(0), inp.read(3), inp.read(0)]
        elif mode == 'readline':
            calls = until_empty(inp.readline)
        elif mode == 'readline-n':
            calls = until_empty(lambda: inp.readline(n))
        elif mode == 'one-line':
            calls = [inp.readline()]
        elif mode == 'readlines':
            calls = inp.readlines() + [b'<end>'] + inp.readlines()
        elif mode == 'readlines-hint':
            while True:
                lines = inp.readlines(n)
                calls.append(b'|'.join(lines) + b' (%d lines)' % len(lines))
                if not lines or len(calls) > 10000:
                    break
        elif mode == 'iter':
            calls = [line for line in inp]
        elif mode == 'mixed':
            calls = [inp.readline(), inp.read(5), inp.readline(3)]
            calls += inp.readlines()
            calls.append(inp.read())
        else:
            raise ValueError('unknown mode %r' % mode)
    except Exception as e:
        error = type(e).__name__
    report = {
        'mode': mode,
        'calls': [show(c) for c in calls],
        'total': sum(len(c) for c in calls if isinstance(c, bytes)),
        'error': error,
        'CONTENT_LENGTH': environ.get('CONTENT_LENGTH'),
    }
    body = json.dumps(report, indent=1).encode('ascii')
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body]
