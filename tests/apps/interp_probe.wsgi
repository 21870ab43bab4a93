# Reports what the interpreter directives did, as JSON, from inside a WSGI app.
import json
import os
import signal
import sys
import warnings


def _info():
    return {
        "pid": os.getpid(),
        "version": sys.version.split()[0],
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "exec_prefix": sys.exec_prefix,
        "path": list(sys.path),
        "hash_abc": str(hash("abc")),
        "hash_randomization": sys.flags.hash_randomization,
        "warnoptions": list(sys.warnoptions),
        "dont_write_bytecode": sys.dont_write_bytecode,
        "flags_dont_write_bytecode": sys.flags.dont_write_bytecode,
        "optimize": sys.flags.optimize,
    }


def _warn():
    try:
        warnings.warn("probe user warning", UserWarning)
    except UserWarning as e:
        return {"raised": True, "type": type(e).__name__, "message": str(e)}
    return {"raised": False}


def _print(qs):
    try:
        print("PRINTED-BY-APP " + qs)
        sys.stdout.flush()
    except OSError as e:
        return {"ok": False, "error": type(e).__name__, "message": str(e)}
    return {"ok": True}


def _stdin():
    try:
        data = sys.stdin.read()
    except OSError as e:
        return {"ok": False, "error": type(e).__name__, "message": str(e)}
    return {"ok": True, "data": data}


def _handler(signum, frame):
    pass


def _signal():
    before = signal.getsignal(signal.SIGUSR2)
    try:
        returned = signal.signal(signal.SIGUSR2, _handler)
    except Exception as e:  # e.g. ValueError outside the main thread
        return {"error": type(e).__name__, "message": str(e)}
    after = signal.getsignal(signal.SIGUSR2)
    out = {
        "returned_is_before": returned is before or returned == before,
        "after_is_handler": after is _handler,
        "returned": repr(returned),
    }
    if after is _handler:
        # Put things back as they were, so the test leaves no handler behind.
        signal.signal(signal.SIGUSR2, before if before is not None else signal.SIG_DFL)
    return out


def _import(name):
    try:
        mod = __import__(name)
    except Exception as e:
        return {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    return {"ok": True, "file": getattr(mod, "__file__", None), "value": getattr(mod, "VALUE", None)}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    qs = environ.get("QUERY_STRING", "")
    if path == "/info":
        body = _info()
    elif path == "/warn":
        body = _warn()
    elif path == "/print":
        body = _print(qs)
    elif path == "/stdin":
        body = _stdin()
    elif path == "/signal":
        body = _signal()
    elif path == "/import":
        body = _import(qs)
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"unknown probe\n"]
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
