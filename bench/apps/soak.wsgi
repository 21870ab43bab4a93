# The soak application (bench/soak.py). Every response carries X-Pid (the child that
# served it) and X-Case (which case answered; absent from Apache's own 500 page).
# SOAK_STATE (a www-data-writable directory next to this script's directory) receives
# one line per event, appended:
#   closes.txt   "<pid> <items sent>" per close() of a /stream response
#   atexit.txt   "<pid>" from an atexit handler registered when a child imports this
# /reload answers, then has its daemon process replaced the way applications ask for it:
# SIGINT to itself.
import atexit
import os
import signal

HERE = os.path.dirname(os.path.abspath(__file__))
STATE = os.path.join(HERE, "..", "state")
FILE = os.path.join(HERE, "..", "static", "64k.bin")
HELLO = b"Hello world\n"
MIB = b"y" * (1024 * 1024)
CHUNK = b"s" * 65536


def _append(name, line):
    with open(os.path.join(STATE, name), "a") as f:
        f.write(line + "\n")


def _at_exit(pid=os.getpid()):
    _append("atexit.txt", str(pid))


atexit.register(_at_exit)


class Stream:
    """A long streamed body; close() records how many items went out."""

    def __init__(self, items):
        self.items = items
        self.sent = 0

    def __iter__(self):
        for _ in range(self.items):
            self.sent += 1
            yield CHUNK

    def close(self):
        _append("closes.txt", "%d %d" % (os.getpid(), self.sent))


def application(environ, start_response):
    case = environ.get("PATH_INFO", "").strip("/") or "hello"
    headers = [("X-Pid", str(os.getpid())), ("X-Case", case)]
    if case == "big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")] + headers)
        return [MIB]
    if case == "echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))] + headers)
        return [body]
    if case == "raise":
        raise ValueError("soak-raised")
    if case == "stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")] + headers)
        return Stream(4000)
    if case == "reload":
        os.kill(os.getpid(), signal.SIGINT)
        start_response("200 OK", [("Content-Type", "text/plain")] + headers)
        return [HELLO]
    if case == "file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")] + headers)
        return environ["wsgi.file_wrapper"](open(FILE, "rb"), 65536)
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(HELLO)))] + headers)
    return [HELLO]
