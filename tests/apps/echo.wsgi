# Echoes the request body. ?mode=read: wsgi.input.read(); ?mode=readn&n=N: read(N)
# until it returns b''. X-Read-Chunks lists the sizes of the reads.
from urllib.parse import parse_qs


def application(environ, start_response):
    qs = parse_qs(environ.get('QUERY_STRING', ''))
    mode = qs.get('mode', ['read'])[0]
    inp = environ['wsgi.input']
    if mode == 'readn':
        n = int(qs['n'][0])
        parts = []
        while True:
            c = inp.read(n)
            if not c:
                break
            parts.append(c)
            if len(parts) > 1000000:
                raise RuntimeError('read(n) never returned empty bytes')
        body = b''.join(parts)
        sizes = [len(c) for c in parts]
    else:
        body = inp.read()
        sizes = [len(body)]
    if not isinstance(body, bytes):
        raise TypeError('wsgi.input returned %s' % type(body).__name__)
    start_response('200 OK', [
        ('Content-Type', 'application/octet-stream'),
        ('Content-Length', str(len(body))),
        ('X-Read-Chunks', ','.join(str(s) for s in sizes) or 'none'),
        ('X-Content-Length', environ.get('CONTENT_LENGTH', '')),
    ])
    return [body]
