# Small app for load tests: reports the interpreter's optimisation level.
import os
import sys


def application(environ, start_response):
    body = ('wsgi ok optimize=%d pid=%d\n' % (sys.flags.optimize, os.getpid())).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('Content-Length', str(len(body)))])
    return [body]
