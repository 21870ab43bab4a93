# Writes to wsgi.errors, sys.stdout and sys.stderr; ?mode=errors|print|outside and
# &tok=T (a token the test looks for in the error log).
import sys
import threading
from urllib.parse import parse_qs


def _outside(tok):
    print('outside-stdout %s' % tok)
    sys.stdout.flush()
    sys.stderr.write('outside-stderr %s\n' % tok)
    sys.stderr.flush()


def application(environ, start_response):
    qs = parse_qs(environ.get('QUERY_STRING', ''))
    mode = qs.get('mode', ['errors'])[0]
    tok = qs.get('tok', ['none'])[0]
    if mode == 'errors':
        err = environ['wsgi.errors']
        err.write('errors-write %s\n' % tok)
        err.writelines(['errors-wl1 %s\n' % tok, 'errors-wl2 %s\n' % tok])
        err.write('errors-partA %s ' % tok)
        err.write('partB\n')
        err.write('errors-flushed %s' % tok)
        err.flush()
        err.write('errors-two %s line1\nerrors-two %s line2\n' % (tok, tok))
    elif mode == 'print':
        print('stdout-print %s' % tok)
        print('stderr-print %s' % tok, file=sys.stderr)
        sys.stdout.write('stdout-partA %s ' % tok)
        sys.stdout.write('partB\n')
        sys.stdout.write('stdout-flushed %s' % tok)
        sys.stdout.flush()
        sys.stderr.write('stderr-flushed %s' % tok)
        sys.stderr.flush()
    elif mode == 'outside':
        t = threading.Timer(0.5, _outside, args=(tok,))
        t.daemon = True
        t.start()
    body = ('logged %s %s' % (mode, tok)).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('Content-Length', str(len(body)))])
    return [body]
