# Conformance app: applications that break the WSGI rules or raise, one per PATH_INFO.
TEXT = [('Content-Type', 'text/plain')]


def _gen(items, fail_after=None):
    for i, item in enumerate(items):
        if fail_after is not None and i == fail_after:
            raise RuntimeError('planned failure in the body iterator')
        yield item


def raise_before_start(environ, start_response):
    raise RuntimeError('planned failure before start_response')


def raise_after_start(environ, start_response):
    start_response('200 OK', TEXT)
    raise RuntimeError('planned failure after start_response, before output')


def raise_in_first_item(environ, start_response):
    start_response('200 OK', TEXT)
    return _gen([b'never'], fail_after=0)


def raise_after_output(environ, start_response):
    start_response('200 OK', TEXT)
    return _gen([b'first;', b'second;', b'never'], fail_after=2)


def raise_after_output_cl(environ, start_response):
    start_response('200 OK', TEXT + [('Content-Length', '20')])
    return _gen([b'0123456789', b'never'], fail_after=1)


def no_start_response(environ, start_response):
    return [b'body without start_response']


def no_start_response_empty(environ, start_response):
    return []


def returns_none(environ, start_response):
    start_response('200 OK', TEXT)
    return None


def str_item(environ, start_response):
    start_response('200 OK', TEXT)
    return ['a str, not bytes']


def str_item_after_output(environ, start_response):
    start_response('200 OK', TEXT)
    return _gen([b'bytes first;', 'then a str'])


def write_str(environ, start_response):
    write = start_response('200 OK', TEXT)
    write('a str, not bytes')
    return []


def bytearray_item(environ, start_response):
    start_response('200 OK', TEXT)
    return [bytearray(b'a bytearray')]


def str_body(environ, start_response):
    start_response('200 OK', TEXT)
    return 'a str body'


def bytes_body(environ, start_response):
    start_response('200 OK', TEXT)
    return b'a bytes body'


def bad_content_length(environ, start_response):
    start_response('200 OK', TEXT + [('Content-Length', 'abc')])
    return [b'body']


def transfer_encoding_header(environ, start_response):
    start_response('200 OK', TEXT + [('Transfer-Encoding', 'chunked')])
    return [b'body']


def deferred_never_started(environ, start_response):
    def body():
        yield b'no start_response at all'
    return body()


def header_name_bytes(environ, start_response):
    start_response('200 OK', TEXT + [(b'X-Bytes', 'v')])
    return [b'not reached']


def header_value_int(environ, start_response):
    start_response('200 OK', TEXT + [('X-Int', 1)])
    return [b'not reached']


def header_value_non_latin1(environ, start_response):
    start_response('200 OK', TEXT + [('X-Snowman', '\u2603')])
    return [b'not reached']


def header_value_crlf(environ, start_response):
    start_response('200 OK', TEXT + [('X-Split', 'a\r\nX-Injected: b')])
    return [b'not reached']


def header_value_lf(environ, start_response):
    start_response('200 OK', TEXT + [('X-Split', 'a\nb')])
    return [b'not reached']


def header_name_space(environ, start_response):
    start_response('200 OK', TEXT + [('X Space', 'v')])
    return [b'not reached']


def header_name_colon(environ, start_response):
    start_response('200 OK', TEXT + [('X-Colon:', 'v')])
    return [b'not reached']


def headers_tuple(environ, start_response):
    start_response('200 OK', tuple(TEXT))
    return [b'not reached']


def header_item_list(environ, start_response):
    start_response('200 OK', [['Content-Type', 'text/plain']])
    return [b'not reached']


def header_item_triple(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain', 'extra')])
    return [b'not reached']


def status_bytes(environ, start_response):
    start_response(b'200 OK', TEXT)
    return [b'not reached']


def status_int(environ, start_response):
    start_response(200, TEXT)
    return [b'not reached']


def status_two_digits(environ, start_response):
    start_response('20 OK', TEXT)
    return [b'not reached']


def status_no_space(environ, start_response):
    start_response('200OK', TEXT)
    return [b'not reached']


def status_words(environ, start_response):
    start_response('abc', TEXT)
    return [b'not reached']


def status_control_char(environ, start_response):
    start_response('200 O\nK', TEXT)
    return [b'not reached']


def status_non_latin1(environ, start_response):
    start_response('200 \u2603', TEXT)
    return [b'not reached']


HANDLERS = {name.replace('_', '-'): f for name, f in list(globals().items())
            if callable(f) and not name.startswith('_')}


def application(environ, start_response):
    name = environ.get('PATH_INFO', '').strip('/')
    handler = HANDLERS.get(name)
    if handler is None:
        start_response('404 Not Found', TEXT)
        return [b'no such case: ' + name.encode('latin-1')]
    return handler(environ, start_response)
