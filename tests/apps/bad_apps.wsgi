# A catalogue of broken WSGI applications (tests/bad_apps.rs). Not run through
# wsgiref.validate: every case here is deliberately invalid.
#
# `application` dispatches on ?case=NAME. Other callables are mounted with
# callable-object=: `not_callable`, `arity1`, `arity3`, and `probe`, which answers
# "pid=<pid>" so the test can tell which child served a request.
# Iterables with a close() record it as a file STATE_DIR/<tok> (tok from the query).
import os
import sys
from urllib.parse import parse_qs

STATE_DIR = '@@STATE_DIR@@'
OK = [('Content-Type', 'text/plain')]
INJECT = 'X-Injected: 1'


def _mark(tok, text):
    if tok:
        path = os.path.join(STATE_DIR, tok)
        with open(path + '.tmp', 'w') as f:
            f.write(text)
        os.replace(path + '.tmp', path)


class Tracked:
    """An iterable over `items` whose close() is recorded. An item that is an
    exception instance is raised instead of yielded; close() raises `close_raises`
    (if given) after recording."""

    def __init__(self, tok, items, close_raises=None):
        self.tok = tok
        self.items = list(items)
        self.count = 0
        self.close_raises = close_raises

    def __iter__(self):
        return self

    def __next__(self):
        if not self.items:
            raise StopIteration
        item = self.items.pop(0)
        if isinstance(item, BaseException):
            raise item
        self.count += 1
        return item

    def close(self):
        _mark(self.tok, 'closed after %d items' % self.count)
        if self.close_raises is not None:
            raise self.close_raises


class Endless:
    """`size` bytes in `block`-byte items, generated as they are asked for."""

    def __init__(self, tok, size, block):
        self.tok = tok
        self.left = size
        self.chunk = b'z' * block
        self.count = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.left <= 0:
            raise StopIteration
        self.count += 1
        n = min(self.left, len(self.chunk))
        self.left -= n
        return self.chunk if n == len(self.chunk) else self.chunk[:n]

    def close(self):
        _mark(self.tok, 'closed after %d items' % self.count)


# start_response arguments that must be refused: (status, headers)
BAD_START = {
    'headers_tuple': ('200 OK', (('Content-Type', 'text/plain'),)),
    'header_3tuple': ('200 OK', OK + [('X-A', 'b', 'c')]),
    'header_str': ('200 OK', OK + ['X-A: b']),
    'name_bytes': ('200 OK', OK + [(b'X-A', 'v')]),
    'value_int': ('200 OK', OK + [('X-A', 5)]),
    'value_nonlatin': ('200 OK', OK + [('X-A', 'snow \u2603')]),
    'value_crlf': ('200 OK', OK + [('X-A', 'a\r\n' + INJECT)]),
    'value_lf': ('200 OK', OK + [('X-A', 'a\n' + INJECT)]),
    'value_cr': ('200 OK', OK + [('X-A', 'a\r' + INJECT)]),
    'name_crlf': ('200 OK', OK + [(INJECT + '\r\nX-A', 'v')]),
    'name_space': ('200 OK', OK + [('X A', 'v')]),
    'status_short': ('20 OK', OK),
    'status_abc': ('abc', OK),
    'status_nospace': ('200OK', OK),
    'status_ctrl': ('200 OK\r\n' + INJECT, OK),
    'status_int': (200, OK),
}

# the write callable of an earlier, finished response
_stale_write = []


def application(environ, start_response):
    qs = parse_qs(environ.get('QUERY_STRING', ''))
    case = qs.get('case', [''])[0]
    tok = qs.get('tok', [''])[0]

    if case in BAD_START:
        status, headers = BAD_START[case]
        start_response(status, headers)
        return [b'must not be sent']
    if case == 'no_start_response':
        return [b'a body without start_response']
    if case == 'no_start_response_empty':
        return []
    if case == 'start_response_twice':
        write = start_response('200 OK', OK)
        write(b'first-output|')
        start_response('500 Oops', OK)
        return [b'must not be sent']
    if case == 'body_str':
        start_response('200 OK', OK)
        return ['a str item']
    if case == 'body_int':
        start_response('200 OK', OK)
        return [42]
    if case == 'body_none':
        start_response('200 OK', OK)
        return [None]
    if case == 'result_none':
        start_response('200 OK', OK)
        return None
    if case == 'gen_never_started':
        start_response('200 OK', OK)
        return Tracked(tok, [ValueError('bad-first-next')])
    if case == 'generator_raises_first':
        def body():
            raise ValueError('bad-generator-first-next')
            yield b'never'
        start_response('200 OK', OK)
        return body()
    if case == 'iter_midway':
        start_response('200 OK', OK)
        return Tracked(tok, [b'part-one|', b'part-two|', RuntimeError('bad-midway'), b'never'])
    if case == 'close_raises':
        start_response('200 OK', OK)
        return Tracked(tok, [b'body-then-', b'failing-close'], close_raises=RuntimeError('bad-close-raised'))
    if case == 'close_exit':
        start_response('200 OK', OK)
        return Tracked(tok, [b'body-then-', b'exiting-close'], close_raises=SystemExit('bad-close-exit'))
    if case == 'exit_midway':
        start_response('200 OK', OK)
        return Tracked(tok, [b'before-exit|', SystemExit('bad-exit-midway'), b'never'])
    if case == 'interrupt_midway':
        start_response('200 OK', OK)
        return Tracked(tok, [b'before-interrupt|', KeyboardInterrupt('bad-interrupt-midway'), b'never'])
    if case == 'unprintable_exception':
        class Unprintable(Exception):
            def __str__(self):
                raise ValueError('str() of the exception failed too')
        raise Unprintable()
    if case == 'recursion':
        def down(n):
            return down(n + 1) + 1
        down(0)
    if case == 'memory':
        return [b'x' * (1 << 60)]
    if case == 'keep_write':
        write = start_response('200 OK', OK)
        _stale_write[:] = [write]
        return [b'kept']
    if case == 'stale_write':
        _stale_write[0](b'late output')
        start_response('200 OK', OK)
        return [b'must not be sent']
    if case == 'cl_larger':
        start_response('200 OK', OK + [('Content-Length', '100')])
        return Tracked(tok, [b'only ten b'])
    if case == 'cl_smaller':
        start_response('200 OK', OK + [('Content-Length', '5')])
        return Tracked(tok, [b'01234', b'56789-extra'])
    if case == 'huge':
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return Endless(tok, 1 << 30, 64 * 1024)
    if case == 'system_exit':
        raise SystemExit(3)
    if case == 'sys_exit':
        sys.exit('bad-sys-exit')
    if case == 'keyboard_interrupt':
        raise KeyboardInterrupt('bad-interrupt')
    if case == 'crash':
        import ctypes
        import faulthandler
        # Apache's stderr (descriptor 2) is the error log: the fault and the
        # traceback naming this script end up there.
        faulthandler.enable(file=2)
        environ['wsgi.errors'].write('crashing in pid %d\n' % os.getpid())
        environ['wsgi.errors'].flush()
        ctypes.string_at(0)
        return [b'not reached']
    start_response('404 Not Found', OK)
    return [('unknown case %r' % case).encode()]


not_callable = 42


def arity1(environ):
    return [b'never']


def arity3(environ, start_response, extra):
    start_response('200 OK', OK)
    return [b'never']


def probe(environ, start_response):
    start_response('200 OK', OK)
    return [('pid=%d' % os.getpid()).encode()]
