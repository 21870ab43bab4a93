# Reports whether the WSGIImportScript ran in this process before this request:
# "imported=<yes|no> pid=<pid>".
import builtins
import os


def application(environ, start_response):
    at = getattr(builtins, 'rp_imported_at', None)
    body = ('imported=%s pid=%d' % ('yes' if at is not None else 'no', os.getpid())).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('Content-Length', str(len(body)))])
    return [body]
