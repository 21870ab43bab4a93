# Deliberately invalid start_response arguments and body items (NOT run through
# wsgiref.validate: the validator itself rejects these before the server sees them).
# ?case=NAME: call start_response with the bad value, catch what it raises and answer
# "exc=<type>" (or "exc=none"). /uncaught?case=NAME lets the exception escape.
# /nonbytes returns a str body item.
from urllib.parse import parse_qs

OK = [('Content-Type', 'text/plain')]

CASES = {
    'status_int': (200, OK),
    'status_short': ('20 OK', OK),
    'status_abc': ('abc', OK),
    'status_nospace': ('200OK', OK),
    'status_ctrl': ('200 O\nK', OK),
    'status_bare': ('200', OK),
    'headers_tuple': ('200 OK', (('Content-Type', 'text/plain'),)),
    'headers_dict': ('200 OK', {'Content-Type': 'text/plain'}),
    'item_3tuple': ('200 OK', OK + [('X-A', 'b', 'c')]),
    'item_str': ('200 OK', OK + ['X-A: b']),
    'name_bytes': ('200 OK', OK + [(b'X-A', 'v')]),
    'value_int': ('200 OK', OK + [('X-A', 5)]),
    'value_bytes': ('200 OK', OK + [('X-A', b'v')]),
    'value_nonlatin': ('200 OK', OK + [('X-A', 'snow \u2603')]),
    'value_cr': ('200 OK', OK + [('X-A', 'a\rb')]),
    'value_lf': ('200 OK', OK + [('X-A', 'a\nb')]),
    'value_nul': ('200 OK', OK + [('X-A', 'a\x00b')]),
    'name_space': ('200 OK', OK + [('X A', 'v')]),
    'name_colon': ('200 OK', OK + [('X:A', 'v')]),
    'name_crlf': ('200 OK', OK + [('X\r\nA', 'v')]),
    'name_empty': ('200 OK', OK + [('', 'v')]),
    'value_latin1': ('200 OK', OK + [('X-A', 'caf\xe9')]),
}


def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    qs = parse_qs(environ.get('QUERY_STRING', ''))
    if path == '/nonbytes':
        start_response('200 OK', OK)
        return ['a str item']
    case = qs['case'][0]
    status, headers = CASES[case]
    if path == '/uncaught':
        start_response(status, headers)
        return [b'accepted']
    try:
        start_response(status, headers)
        name = 'none'
    except Exception as e:
        name = type(e).__name__
    if name != 'none':
        start_response('200 OK', OK)
    return [('exc=%s' % name).encode()]
