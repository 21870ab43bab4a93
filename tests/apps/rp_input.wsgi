# Reads wsgi.input in the way ?mode= names and reports what it got as JSON:
# {"mode", "sizes": size of each piece, "len", "sha256", "types": type names of pieces,
#  "rest": bytes read after a readlines(hint)}.
# ?mode=disconnect&token=T reads until the body ends or an OSError, and records the
# outcome in @@STATE_DIR@@/disc-T; ?mode=state&token=T returns that record.
# Note: mode=read calls read() without a size, which wsgiref.validate rejects; the
# tests use it on the plain app only.
import hashlib
import json
import os
from urllib.parse import parse_qs

STATE_DIR = '@@STATE_DIR@@'


def _record(token, text):
    path = os.path.join(STATE_DIR, 'disc-' + token)
    with open(path + '.tmp', 'w') as f:
        f.write(text)
    os.rename(path + '.tmp', path)


def _loop(fn):
    parts = []
    while True:
        c = fn()
        if not c:
            return parts
        parts.append(c)
        if len(parts) > 1000000:
            raise RuntimeError('input never returned empty bytes')


def application(environ, start_response):
    qs = parse_qs(environ.get('QUERY_STRING', ''))
    mode = qs.get('mode', ['read'])[0]
    inp = environ['wsgi.input']
    rest = b''
    if mode == 'state':
        path = os.path.join(STATE_DIR, 'disc-' + qs['token'][0])
        text = open(path).read() if os.path.exists(path) else 'none'
        body = text.encode()
        start_response('200 OK', [('Content-Type', 'text/plain'),
                                  ('Content-Length', str(len(body)))])
        return [body]
    if mode == 'disconnect':
        token = qs['token'][0]
        total = 0
        try:
            while True:
                c = inp.read(4096)
                if not c:
                    break
                total += len(c)
            _record(token, 'no-error total=%d' % total)
        except OSError as e:
            _record(token, 'OSError %s total=%d' % (type(e).__name__, total))
            start_response('400 Bad Request', [('Content-Type', 'text/plain')])
            return [b'client went away']
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'read everything']
    if mode == 'read':
        parts = [inp.read()]
    elif mode == 'read_neg':
        parts = [inp.read(-1)]
    elif mode == 'read_none':
        parts = [inp.read(None)]
    elif mode == 'readn':
        n = int(qs['n'][0])
        parts = _loop(lambda: inp.read(n))
    elif mode == 'readline':
        parts = _loop(lambda: inp.readline())
    elif mode == 'readline_n':
        n = int(qs['n'][0])
        parts = _loop(lambda: inp.readline(n))
    elif mode == 'readlines':
        parts = inp.readlines()
    elif mode == 'readlines_hint':
        parts = inp.readlines(int(qs['hint'][0]))
        rest = b''.join(_loop(lambda: inp.read(8192)))
    elif mode == 'iter':
        parts = [line for line in inp]
    elif mode == 'ignore':
        parts = []
    else:
        raise ValueError('unknown mode %r' % mode)
    data = b''.join(p for p in parts if isinstance(p, bytes)) + rest
    body = json.dumps({
        'mode': mode,
        'sizes': [len(p) for p in parts],
        'len': len(data),
        'sha256': hashlib.sha256(data).hexdigest(),
        'types': sorted(set(type(p).__name__ for p in parts)),
        'rest': len(rest),
        'content_length': environ.get('CONTENT_LENGTH'),
    }).encode()
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
