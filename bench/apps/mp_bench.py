# The benchmark's hello case as a mod_python handler.
from mod_python import apache

HELLO = b"Hello world\n"


def handler(req):
    req.content_type = "text/plain"
    req.set_content_length(len(HELLO))
    req.write(HELLO)
    return apache.OK
