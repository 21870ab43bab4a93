# Response-splitting attempts (tests/security.rs). ?v=NAME picks a start_response call
# whose status, header name or value carries CR/LF (or other line breaks) followed by
# an injected header or body. ?mode=caught catches what start_response raises and
# answers "refused <ExceptionType>" (or "accepted" if it raised nothing);
# ?mode=uncaught lets it escape.
from urllib.parse import parse_qs

OK = [('Content-Type', 'text/plain')]
INJ = 'X-Injected: 1'

VECTORS = {
    'value_crlf': ('200 OK', OK + [('X-A', 'a\r\n' + INJ)]),
    'value_lf': ('200 OK', OK + [('X-A', 'a\n' + INJ)]),
    'value_cr': ('200 OK', OK + [('X-A', 'a\r' + INJ)]),
    'value_crlf_body': ('200 OK', OK + [('X-A', 'a\r\n\r\n<html>injected body')]),
    'value_crlf_setcookie': ('200 OK', OK + [('Location', '/x\r\nSet-Cookie: x-injected=1')]),
    'content_type_crlf': ('200 OK', [('Content-Type', 'text/html\r\n' + INJ)]),
    'value_nul': ('200 OK', OK + [('X-A', 'a\x00' + INJ)]),
    'value_u2028': ('200 OK', OK + [('X-A', 'a\u2028' + INJ)]),
    'value_u0085': ('200 OK', OK + [('X-A', 'a\x85' + INJ)]),
    'name_crlf': ('200 OK', OK + [(INJ + '\r\nX-A', 'v')]),
    'name_lf': ('200 OK', OK + [('X-A\n' + INJ + '\nX-B', 'v')]),
    'name_colon': ('200 OK', OK + [('X-Injected: 1\r\nX-A', 'v')]),
    'status_crlf': ('200 OK\r\n' + INJ, OK),
    'status_lf': ('200 OK\n' + INJ, OK),
    'status_cr': ('200 OK\r' + INJ, OK),
    'status_crlf_body': ('200 OK\r\n\r\ninjected body', OK),
}


def application(environ, start_response):
    qs = parse_qs(environ.get('QUERY_STRING', ''))
    status, headers = VECTORS[qs['v'][0]]
    mode = qs.get('mode', ['caught'])[0]
    if mode == 'uncaught':
        start_response(status, headers)
        return [b'accepted']
    try:
        start_response(status, headers)
    except Exception as e:
        start_response('200 OK', OK)
        return [('refused %s' % type(e).__name__).encode()]
    return [b'accepted']
