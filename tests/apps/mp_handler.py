# mod_python handler mounted next to a WSGI app (PythonHandler mp_handler).
import os
import sys

from mod_python import apache


def handler(req):
    req.content_type = 'text/plain'
    req.write('mod_python ok optimize=%d pid=%d\n' % (sys.flags.optimize, os.getpid()))
    return apache.OK
