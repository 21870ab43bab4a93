# The smallest useful WSGI application: what `make run` serves by default.
#
#   curl http://127.0.0.1:8000/      ->  Hello World


def application(environ, start_response):
    body = b"Hello World\n"
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(body))),
    ])
    return [body]
