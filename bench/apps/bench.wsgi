# The benchmark application: one script, one case per PATH_INFO, so every
# server under test loads the same code.
import os

HELLO = b"Hello world\n"
CHUNK = b"x" * 99 + b"\n"
MIB = b"y" * (1024 * 1024)
FILE = os.path.join(os.path.dirname(__file__), "..", "static", "1mib.bin")


def _read_blocks(f, size):
    with f:
        while True:
            block = f.read(size)
            if not block:
                return
            yield block


def application(environ, start_response):
    case = environ.get("PATH_INFO", "")
    if case == "/yields":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (CHUNK for _ in range(100))
    if case == "/1mib":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [MIB]
    if case == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        # wsgi.file_wrapper is optional (PEP 3333); granian has none, so it gets
        # the plain iteration that PEP gives as the fallback.
        wrapper = environ.get("wsgi.file_wrapper", _read_blocks)
        return wrapper(open(FILE, "rb"), 65536)
    if case == "/print":
        # print() goes to the error log, one line each.
        for i in range(1000):
            print("bench print line", i)
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(HELLO)))])
        return [HELLO]
    if case == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(HELLO)))])
    return [HELLO]
