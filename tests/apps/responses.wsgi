# Response shapes, chosen by PATH_INFO. @@STATE_DIR@@ is a www-data-writable directory
# where close() leaves a marker file, so any child can report it.
import os
from urllib.parse import parse_qs

STATE_DIR = '@@STATE_DIR@@'


class Closing:
    def __init__(self, token, chunks):
        self.token = token
        self.chunks = chunks

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        with open(os.path.join(STATE_DIR, 'closed-' + self.token), 'w') as f:
            f.write('closed')


def _gen():
    for i in range(5):
        yield ('chunk%d;' % i).encode()


def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    qs = parse_qs(environ.get('QUERY_STRING', ''))
    if path == '/list':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'alpha-', b'beta-', b'gamma']
    if path == '/gen':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return _gen()
    if path == '/status':
        start_response("418 I'm a teapot", [('Content-Type', 'text/plain'),
                                            ('X-Custom', 'custom-value')])
        return [b'teapot']
    if path == '/created':
        start_response('201 Created', [('Content-Type', 'text/plain'),
                                       ('X-Other', 'other value; with=params')])
        return [b'created']
    if path == '/close':
        token = qs['token'][0]
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return Closing(token, [b'closing-body'])
    if path == '/closed':
        token = qs['token'][0]
        done = os.path.exists(os.path.join(STATE_DIR, 'closed-' + token))
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'closed=yes' if done else b'closed=no']
    start_response('404 Not Found', [('Content-Type', 'text/plain')])
    return [b'no such path ' + path.encode('latin-1')]
