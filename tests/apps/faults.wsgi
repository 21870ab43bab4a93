# The reliability catalogue's application (tests/client_faults.rs, tests/load_restarts.rs).
# Every response carries X-Pid (the child that served it) and, when the request gave
# ?seq=N, X-Seq: N. @@STATE_DIR@@ is www-data-writable; records are appended one line
# at a time (small appends to an O_APPEND file do not interleave between processes):
#   closes.txt    "<pid> <items sent>" per close() of a /stream response
#   bodies.txt    "<pid> <outcome>" per /upload request
#   atexit.txt    "<pid>" from an atexit handler, registered when a child imports
#                 this script (so every child that served a request has one)
# Paths: /hello, /big?n=BYTES (a list body, default 1 MiB), /echo (POST, echoes the
# body), /raise (ValueError before start_response -> 500), /gen (a streamed generator
# body, no Content-Length), /stream (a large streamed body whose close() is recorded),
# /upload (reads the whole body; records the outcome and lets an OSError propagate),
# /count?name=closes|bodies (lines in that record).
import atexit
import os
from urllib.parse import parse_qs

STATE_DIR = '@@STATE_DIR@@'
MIB = 1024 * 1024
CHUNK = b's' * 65536


def _append(name, line):
    with open(os.path.join(STATE_DIR, name), 'a') as f:
        f.write(line + '\n')


def _at_exit(pid=os.getpid()):
    _append('atexit.txt', str(pid))


atexit.register(_at_exit)


def _pattern(n):
    unit = bytes(range(256))
    return (unit * (n // 256 + 1))[:n]


class Stream:
    """A long streamed body; close() records how many items went out."""

    def __init__(self, items):
        self.items = items
        self.sent = 0

    def __iter__(self):
        for _ in range(self.items):
            self.sent += 1
            yield CHUNK

    def close(self):
        _append('closes.txt', '%d %d' % (os.getpid(), self.sent))


def _gen():
    for i in range(7):
        yield ('part%d;' % i).encode()


def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    qs = parse_qs(environ.get('QUERY_STRING', ''))
    extra = [('X-Pid', str(os.getpid()))]
    if 'seq' in qs:
        extra.append(('X-Seq', qs['seq'][0]))

    def reply(body, ctype='text/plain', length=True):
        headers = [('Content-Type', ctype)] + extra
        if length:
            headers.append(('Content-Length', str(len(body))))
        start_response('200 OK', headers)
        return [body]

    if path == '/hello':
        return reply(b'hello from %d\n' % os.getpid())
    if path == '/big':
        return reply(_pattern(int(qs.get('n', [str(MIB)])[0])), 'application/octet-stream')
    if path == '/echo':
        n = int(environ.get('CONTENT_LENGTH') or 0)
        return reply(environ['wsgi.input'].read(n), 'application/octet-stream')
    if path == '/raise':
        raise ValueError('faults-app-raised')
    if path == '/gen':
        start_response('200 OK', [('Content-Type', 'text/plain')] + extra)
        return _gen()
    if path == '/stream':
        start_response('200 OK', [('Content-Type', 'application/octet-stream')] + extra)
        return Stream(int(qs.get('items', ['4000'])[0]))
    if path == '/upload':
        total = 0
        try:
            while True:
                c = environ['wsgi.input'].read(8192)
                if not c:
                    break
                total += len(c)
        except OSError as e:
            _append('bodies.txt', '%d OSError after %d bytes: %s' % (os.getpid(), total, e))
            raise
        _append('bodies.txt', '%d complete %d bytes' % (os.getpid(), total))
        return reply(b'got %d bytes' % total)
    if path == '/count':
        p = os.path.join(STATE_DIR, qs['name'][0] + '.txt')
        n = 0
        if os.path.exists(p):
            with open(p) as f:
                n = sum(1 for _ in f)
        return reply(str(n).encode())
    start_response('404 Not Found', [('Content-Type', 'text/plain')] + extra)
    return [b'no such path ' + path.encode('latin-1')]
