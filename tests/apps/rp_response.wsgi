# Response behaviours, chosen by PATH_INFO; query arguments as noted. @@STATE_DIR@@ is
# www-data-writable: close() leaves close-<tok> there (text: how it ended), and
# /closed?tok=T reports it. @@DATA_FILE@@ is a file the test wrote.
import io
import os
import sys
import time
from urllib.parse import parse_qs

STATE_DIR = '@@STATE_DIR@@'
DATA_FILE = '@@DATA_FILE@@'
TEXT = [('Content-Type', 'text/plain')]


def _mark(tok, how):
    path = os.path.join(STATE_DIR, 'close-' + tok)
    with open(path + '.tmp', 'w') as f:
        f.write(how)
    os.rename(path + '.tmp', path)


class Body:
    """An iterable with close(); `fail_at` raises before that item; `delay` sleeps
    between items."""

    def __init__(self, tok, items, fail_at=None, delay=0.0):
        self.tok = tok
        self.items = items
        self.fail_at = fail_at
        self.delay = delay
        self.sent = 0

    def __iter__(self):
        for i, item in enumerate(self.items):
            if self.fail_at is not None and i == self.fail_at:
                raise RuntimeError('rp-mid-iteration')
            if i and self.delay:
                time.sleep(self.delay)
            self.sent += 1
            yield item

    def close(self):
        _mark(self.tok, 'closed after %d items' % self.sent)


class Reader:
    """A file-like object with read() and close() only (no fileno): records the sizes
    asked for and whether close() was called."""

    def __init__(self, tok, data):
        self.tok = tok
        self.data = io.BytesIO(data)
        self.asked = []

    def read(self, n=-1):
        self.asked.append(n)
        return self.data.read(n)

    def close(self):
        sizes = sorted(set(self.asked))
        _mark(self.tok, 'reader closed; sizes asked %s' % ','.join(str(x) for x in sizes))


def _slow_gen():
    yield b'first|'
    time.sleep(1.5)
    yield b'second'


def _gen():
    for i in range(5):
        yield ('chunk%d;' % i).encode()


def _yield_then_read(environ):
    yield b'ready|'
    yield environ['wsgi.input'].read(int(environ['CONTENT_LENGTH']))


def _fail_after_first():
    yield b'first-part|'
    raise RuntimeError('rp-after-headers')


def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    qs = parse_qs(environ.get('QUERY_STRING', ''))
    tok = qs.get('tok', ['none'])[0]
    if path == '/list':
        start_response('200 OK', TEXT)
        return [b'alpha-', b'beta-', b'gamma']
    if path == '/gen':
        start_response('200 OK', TEXT)
        return _gen()
    if path == '/slow_gen':
        start_response('200 OK', TEXT)
        return _slow_gen()
    if path == '/yield_then_read':
        start_response('200 OK', TEXT)
        return _yield_then_read(environ)
    if path == '/write':
        write = start_response('200 OK', TEXT)
        write(b'w1-')
        write(b'w2-')
        return [b'end']
    if path == '/write_slow':
        write = start_response('200 OK', TEXT)
        write(b'written-early|')
        time.sleep(1.5)
        return [b'returned-late']
    if path == '/write_only':
        write = start_response('200 OK', TEXT)
        write(b'only-written')
        return []
    if path == '/close':
        kind = qs.get('kind', ['normal'])[0]
        start_response('200 OK', TEXT)
        if kind == 'normal':
            return Body(tok, [b'one|', b'two|', b'three'])
        if kind == 'exc':
            return Body(tok, [b'one|', b'two|', b'three'], fail_at=1)
        if kind == 'abort':
            return Body(tok, [b'x' * 65536] * 4000, delay=0.002)
        raise ValueError(kind)
    if path == '/closed':
        p = os.path.join(STATE_DIR, 'close-' + tok)
        text = open(p).read() if os.path.exists(p) else 'not closed'
        start_response('200 OK', TEXT)
        return [text.encode()]
    if path == '/fw_file':
        blk = int(qs.get('blk', ['8192'])[0])
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return environ['wsgi.file_wrapper'](open(DATA_FILE, 'rb'), blk)
    if path == '/fw_bytesio':
        blk = int(qs.get('blk', ['8192'])[0])
        with open(DATA_FILE, 'rb') as f:
            data = io.BytesIO(f.read())
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return environ['wsgi.file_wrapper'](data, blk)
    if path == '/fw_file_cl':
        n = int(qs['n'][0])
        start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                                  ('Content-Length', str(n))])
        if qs.get('src', ['file'])[0] == 'bytesio':
            with open(DATA_FILE, 'rb') as f:
                return environ['wsgi.file_wrapper'](io.BytesIO(f.read()), 4096)
        return environ['wsgi.file_wrapper'](open(DATA_FILE, 'rb'), 4096)
    if path == '/fw_reader':
        blk = int(qs['blk'][0])
        with open(DATA_FILE, 'rb') as f:
            data = f.read()
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return environ['wsgi.file_wrapper'](Reader(tok, data), blk)
    if path == '/cl_extra':
        start_response('200 OK', TEXT + [('Content-Length', '5')])
        return [b'01234', b'56789']
    if path == '/cl_short':
        start_response('200 OK', TEXT + [('Content-Length', '100')])
        return [b'only ten b']
    if path == '/head':
        start_response('200 OK', TEXT + [('X-Method', environ['REQUEST_METHOD'])])
        return [b'head-body-must-not-be-sent']
    if path == '/s204':
        start_response('204 No Content', [('X-Status', '204')])
        return [b'no-content-body-must-not-be-sent']
    if path == '/s304':
        start_response('304 Not Modified', [('X-Status', '304')])
        return [b'not-modified-body-must-not-be-sent']
    if path == '/exc_before':
        raise RuntimeError('rp-before-headers')
    if path == '/exc_after':
        start_response('200 OK', TEXT)
        return _fail_after_first()
    if path == '/second_sr':
        start_response('500 Replaced Me', TEXT + [('X-First', '1')])
        start_response('202 Accepted', TEXT + [('X-Second', '1')])
        return [b'second wins']
    if path == '/sr_after_output':
        write = start_response('200 OK', TEXT)
        write(b'started|')
        try:
            start_response('500 Too Late', TEXT)
        except Exception as e:
            return [('raised=%s' % type(e).__name__).encode()]
        return [b'raised=none']
    if path == '/exc_info_before':
        try:
            raise ValueError('rp-handled-early')
        except ValueError:
            start_response('503 Service Unavailable', TEXT, sys.exc_info())
        return [b'custom error page']
    if path == '/exc_info_after':
        write = start_response('200 OK', TEXT)
        write(b'partial|')
        try:
            raise ValueError('rp-excinfo-after-output')
        except ValueError:
            start_response('500 Internal Server Error', TEXT, sys.exc_info())
        return [b'must not be reached']
    start_response('404 Not Found', TEXT)
    return [b'no such path ' + path.encode('latin-1')]
