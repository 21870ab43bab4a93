# Runs in the daemon groups of tests/daemon_lifecycle.rs, which set one lifecycle or
# limit option each and check what it does. Paths:
#   /where          {"pid": ...}: which process answered
#   /sleep?SECONDS  sleeps (giving up the GIL), then answers "slept"
#   /hold-gil?SECONDS
#                   calls C's sleep() through ctypes.PyDLL, which keeps the GIL: no
#                   other Python thread of the process can run meanwhile
#   /grow?MIB       keeps MIB more MiB of touched memory for the life of the process
#   /spin?SECONDS   burns CPU for that long
#   /limits         the process's rlimits, nice value and this thread's stack size
#   /server-metrics {"pid": ..., "server_metrics": mod_wsgi.server_metrics()}
import ctypes
import json
import os
import resource
import time

import mod_wsgi

_kept = []


def _arg(environ):
    return float(environ.get("QUERY_STRING") or 0)


def _json(start_response, value):
    body = json.dumps(value).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _stack_size():
    libc = ctypes.CDLL(None)
    libc.pthread_self.restype = ctypes.c_ulong
    libc.pthread_getattr_np.argtypes = [ctypes.c_ulong, ctypes.c_void_p]
    attr = ctypes.create_string_buffer(128)  # pthread_attr_t is 56 bytes on x86-64
    size = ctypes.c_size_t()
    if libc.pthread_getattr_np(libc.pthread_self(), attr) != 0:
        return None
    libc.pthread_attr_getstacksize(attr, ctypes.byref(size))
    libc.pthread_attr_destroy(attr)
    return size.value


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/where":
        return _json(start_response, {"pid": os.getpid()})
    if path == "/sleep":
        time.sleep(_arg(environ))
        return _json(start_response, {"pid": os.getpid(), "slept": True})
    if path == "/hold-gil":
        ctypes.PyDLL(None).sleep(int(_arg(environ)))
        return _json(start_response, {"pid": os.getpid(), "held": True})
    if path == "/grow":
        _kept.append(b"m" * int(_arg(environ) * 1048576))
        return _json(start_response, {"pid": os.getpid(), "kept_mib": sum(len(b) for b in _kept) >> 20})
    if path == "/spin":
        end = time.process_time() + _arg(environ)
        while time.process_time() < end:
            pass
        return _json(start_response, {"pid": os.getpid(), "spun": True})
    if path == "/limits":
        return _json(start_response, {
            "pid": os.getpid(),
            "data": resource.getrlimit(resource.RLIMIT_DATA),
            "as": resource.getrlimit(resource.RLIMIT_AS),
            "cpu": resource.getrlimit(resource.RLIMIT_CPU),
            "nice": os.getpriority(os.PRIO_PROCESS, 0),
            "stack_size": _stack_size(),
            "stack_rlimit": resource.getrlimit(resource.RLIMIT_STACK)[0],
        })
    if path == "/server-metrics":
        return _json(start_response, {"pid": os.getpid(), "server_metrics": mod_wsgi.server_metrics()})
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such path"]
