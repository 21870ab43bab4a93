# Answers "version=@@VERSION@@ pid=<pid> loads=<times this process loaded a version>".
import builtins
import os

builtins.rp_reload_loads = getattr(builtins, 'rp_reload_loads', 0) + 1
VERSION = '@@VERSION@@'


def application(environ, start_response):
    body = ('version=%s pid=%d loads=%d reloading=%s' % (
        VERSION, os.getpid(), builtins.rp_reload_loads,
        environ.get('mod_wsgi.script_reloading'))).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('Content-Length', str(len(body)))])
    return [body]
