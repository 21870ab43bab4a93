# Conformance app: response shapes, one per PATH_INFO. @@DATA_DIR@@ holds blob.bin
# (a file the suite writes) for the file_wrapper cases.
import io
import os

DATA_DIR = '@@DATA_DIR@@'
BLOB = os.path.join(DATA_DIR, 'blob.bin')
TEXT = [('Content-Type', 'text/plain')]


def pattern(size):
    unit = bytes(range(256))
    return (unit * (size // 256 + 1))[:size]


def gen(items):
    for item in items:
        yield item


def list_body(environ, start_response):
    start_response('200 OK', TEXT)
    return [b'alpha-', b'beta-', b'gamma']


def tuple_body(environ, start_response):
    start_response('200 OK', TEXT)
    return (b'one', b'two')


def generator(environ, start_response):
    start_response('200 OK', TEXT)
    return gen([b'chunk%d;' % i for i in range(5)])


def generator_cl(environ, start_response):
    start_response('200 OK', TEXT + [('Content-Length', '12')])
    return gen([b'abcd', b'efgh', b'ijkl'])


def write_only(environ, start_response):
    write = start_response('200 OK', TEXT)
    write(b'written-1;')
    write(b'written-2;')
    return []


def write_then_iter(environ, start_response):
    write = start_response('200 OK', TEXT)
    write(b'from-write;')
    return [b'from-list;', b'end']


def empty_list(environ, start_response):
    start_response('200 OK', TEXT)
    return []


def empty_items(environ, start_response):
    start_response('200 OK', TEXT)
    return [b'', b'x', b'', b'y', b'']


def only_empty_items(environ, start_response):
    start_response('200 OK', TEXT)
    return gen([b'', b''])


def large(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    data = pattern(5 * 1024 * 1024)
    return gen([data[i:i + 65536] for i in range(0, len(data), 65536)])


def large_single(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    return [pattern(5 * 1024 * 1024)]


def file_real(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    return environ['wsgi.file_wrapper'](open(BLOB, 'rb'), 8192)


def file_real_cl(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                              ('Content-Length', '1000')])
    return environ['wsgi.file_wrapper'](open(BLOB, 'rb'))


def file_real_offset(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    f = open(BLOB, 'rb')
    f.seek(1000)
    return environ['wsgi.file_wrapper'](f)


def write_during_iteration(environ, start_response):
    write = start_response('200 OK', TEXT)

    def body():
        yield b'item-1;'
        write(b'written-between;')
        yield b'item-2'
    return body()


def deferred_start_response(environ, start_response):
    def body():
        start_response('200 OK', TEXT + [('X-Deferred', 'yes')])
        yield b'started inside the iterator;'
        yield b'second'
    return body()


def deferred_start_response_empty_first(environ, start_response):
    def body():
        start_response('202 Accepted', TEXT)
        yield b''
        yield b'after an empty item'
    return body()


def file_bytesio(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    return environ['wsgi.file_wrapper'](io.BytesIO(pattern(100000)), 4096)


def file_bytesio_cl(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                              ('Content-Length', '5000')])
    return environ['wsgi.file_wrapper'](io.BytesIO(pattern(100000)), 4096)


def status_204(environ, start_response):
    start_response('204 No Content', [('X-Note', 'no body')])
    return [b'this body must not be sent']


def status_304(environ, start_response):
    start_response('304 Not Modified', [('ETag', '"abc"')])
    return [b'this body must not be sent']


def teapot(environ, start_response):
    start_response("418 I'm a teapot", TEXT + [('X-Custom', 'custom value; a=b')])
    return [b'teapot']


def status_unknown_code(environ, start_response):
    start_response('299 Something Custom', TEXT)
    return [b'custom status']


def status_bare(environ, start_response):
    start_response('200', TEXT)
    return [b'bare status']


def status_lowercase_reason(environ, start_response):
    start_response('404 not here', TEXT)
    return [b'missing thing']


def repeated_headers(environ, start_response):
    start_response('200 OK', TEXT + [('Set-Cookie', 'a=1'), ('X-Mid', 'm'),
                                     ('Set-Cookie', 'b=2'), ('set-cookie', 'c=3')])
    return [b'cookies']


def no_content_type(environ, start_response):
    start_response('200 OK', [])
    return [b'no content type']


def latin1_header(environ, start_response):
    start_response('200 OK', TEXT + [('X-Latin', 'caf\xe9')])
    return [b'latin-1 header']


def empty_header_value(environ, start_response):
    start_response('200 OK', TEXT + [('X-Empty', '')])
    return [b'empty header value']


def method_header(environ, start_response):
    start_response('200 OK', TEXT + [('X-Method', environ['REQUEST_METHOD'])])
    return [b'method ' + environ['REQUEST_METHOD'].encode('latin-1')]


def header_whitespace(environ, start_response):
    start_response('200 OK', TEXT + [('X-Spaces', '  padded value  ')])
    return [b'spaces']


def status_latin1_reason(environ, start_response):
    start_response('200 Tr\xe8s bien', TEXT)
    return [b'latin-1 reason']


def content_type_twice(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Type', 'text/html')])
    return [b'two content types']


def connection_header(environ, start_response):
    start_response('200 OK', TEXT + [('Connection', 'close')])
    return gen([b'connection ', b'header'])


class _Str(str):
    pass


class _Bytes(bytes):
    pass


def str_subclasses(environ, start_response):
    start_response(_Str('200 OK'), [(_Str('Content-Type'), _Str('text/plain')),
                                    (_Str('X-Sub'), _Str('subclass'))])
    return [b'str subclasses in status and headers']


def bytes_subclass_items(environ, start_response):
    start_response('200 OK', TEXT)
    return gen([_Bytes(b'bytes '), _Bytes(b'subclass')])


def many_small_items(environ, start_response):
    start_response('200 OK', TEXT)
    return gen([b'%d,' % i for i in range(10000)])


class _CloseRaises:
    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)

    def close(self):
        raise RuntimeError('planned failure in close()')


class _CloseRaisesList(list):
    def close(self):
        raise RuntimeError('planned failure in close()')


def close_raises_iterable(environ, start_response):
    start_response('200 OK', TEXT)
    return _CloseRaises([b'body before ', b'a failing close'])


def close_raises_list(environ, start_response):
    start_response('200 OK', TEXT)
    return _CloseRaisesList([b'list body before ', b'a failing close'])


def location_redirect(environ, start_response):
    start_response('302 Found', TEXT + [('Location', '/elsewhere')])
    return [b'moved']


def cl_too_long(environ, start_response):
    start_response('200 OK', TEXT + [('Content-Length', '100')])
    return [b'only ten b']


def cl_too_short(environ, start_response):
    start_response('200 OK', TEXT + [('Content-Length', '5')])
    return [b'0123456789', b'abcdefghij']


def cl_zero(environ, start_response):
    start_response('200 OK', TEXT + [('Content-Length', '0')])
    return [b'should not appear']


def start_response_twice(environ, start_response):
    start_response('500 Oops', [('X-First', '1')])
    start_response('201 Created', TEXT + [('X-Second', '2')])
    return [b'second wins']


def exc_info_before_output(environ, start_response):
    start_response('200 OK', TEXT + [('X-Before', '1')])
    try:
        raise ValueError('planned')
    except ValueError:
        import sys
        start_response('503 Service Unavailable', TEXT, sys.exc_info())
    return [b'replaced by the error response']


def exc_info_after_output(environ, start_response):
    import sys
    write = start_response('200 OK', TEXT)
    write(b'partial output;')
    try:
        raise ValueError('planned after output')
    except ValueError:
        start_response('500 Error', TEXT, sys.exc_info())
    return [b'never reached']


def start_response_after_output(environ, start_response):
    write = start_response('200 OK', TEXT)
    write(b'partial output;')
    start_response('500 Error', TEXT)
    return [b'never reached']


def close_called(environ, start_response):
    start_response('200 OK', TEXT)
    return Closing(environ, [b'closing-body'], fail=False)


def closed(environ, start_response):
    # close() may run in another process just after the client saw the response end:
    # wait a little for the marker (unless asked not to).
    import time
    from urllib.parse import parse_qs
    qs = parse_qs(environ['QUERY_STRING'])
    path = os.path.join('@@STATE_DIR@@', 'closed-' + qs['token'][0])
    deadline = time.time() + (0 if 'now' in qs else 3)
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.02)
    start_response('200 OK', TEXT)
    return [b'closed=yes' if os.path.exists(path) else b'closed=no']


class Closing:
    def __init__(self, environ, items, fail):
        from urllib.parse import parse_qs
        self.token = parse_qs(environ['QUERY_STRING'])['token'][0]
        self.items = items
        self.fail = fail

    def __iter__(self):
        for item in self.items:
            yield item
        if self.fail:
            raise RuntimeError('planned failure while iterating')

    def close(self):
        with open(os.path.join('@@STATE_DIR@@', 'closed-' + self.token), 'w') as f:
            f.write('closed')


def close_on_error(environ, start_response):
    start_response('200 OK', TEXT)
    return Closing(environ, [b'first;'], fail=True)


def close_on_error_early(environ, start_response):
    start_response('200 OK', TEXT)
    return Closing(environ, [], fail=True)


HANDLERS = {name.replace('_', '-'): f for name, f in list(globals().items())
            if callable(f) and not isinstance(f, type) and not name.startswith('_')
            and name not in ('pattern', 'gen', 'application')}


def application(environ, start_response):
    name = environ.get('PATH_INFO', '').strip('/')
    handler = HANDLERS.get(name)
    if handler is None:
        start_response('404 Not Found', TEXT)
        return [b'no such case: ' + name.encode('latin-1')]
    return handler(environ, start_response)
