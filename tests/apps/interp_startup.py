# Loaded by WSGIImportScript in every child: records the child's hash of 'abc'
# and registers an atexit handler, both in files under @@STATE_DIR@@.
import atexit
import os

_state = "@@STATE_DIR@@"

with open(os.path.join(_state, "hashes.txt"), "a") as f:
    f.write("%d %d\n" % (os.getpid(), hash("abc")))


def _at_exit(pid=os.getpid()):
    with open(os.path.join(_state, "atexit.txt"), "a") as f:
        f.write("%d\n" % pid)


atexit.register(_at_exit)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"startup script\n"]
