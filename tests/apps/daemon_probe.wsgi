# Runs in a daemon process group: reports where it runs, and exercises the
# request body, streaming, file_wrapper, errors and self-signalling through
# the daemon's connection to the Apache child.
import json
import os
import signal
import sys

import mod_wsgi

FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "blob.bin")
QUEUE_KEYS = ("queue_start", "daemon_start", "daemon_connects", "daemon_restarts")


def on_event(name, **kwargs):
    # How request_started reported the way to the daemon, for /where.
    if name == "request_started":
        kwargs["request_data"]["queue"] = [kwargs.get(key) for key in QUEUE_KEYS]


mod_wsgi.subscribe_events(on_event)


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"chunk %d\n" % i for i in range(50))
    if path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(FILE, "rb"), 65536)
    if path == "/raise":
        raise RuntimeError("raised in the daemon")
    if path == "/log":
        print("daemon-probe print", environ.get("QUERY_STRING"))
        environ["wsgi.errors"].write("daemon-probe wsgi.errors %s\n" % environ.get("QUERY_STRING"))
    if path == "/sigint":
        os.kill(os.getpid(), signal.SIGINT)
    info = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "cwd": os.getcwd(),
        "process_group": mod_wsgi.process_group,
        "environ_process_group": environ.get("mod_wsgi.process_group"),
        "maximum_processes": mod_wsgi.maximum_processes,
        "threads_per_process": mod_wsgi.threads_per_process,
        "multithread": environ["wsgi.multithread"],
        "multiprocess": environ["wsgi.multiprocess"],
        "optimize": sys.flags.optimize,
        "sys_path": sys.path,
        "remote_addr": environ.get("REMOTE_ADDR"),
        "script_name": environ.get("SCRIPT_NAME"),
        "path_info": environ.get("PATH_INFO"),
        "method": environ.get("REQUEST_METHOD"),
        "argv": sys.argv,
        "queue": [environ.get("mod_wsgi." + key) for key in QUEUE_KEYS],
        "queue_event": mod_wsgi.request_data().get("queue"),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(info).encode()]


def big_application(environ, start_response):
    """/count reads the whole body in blocks and answers its size; /big
    streams QUERY_STRING bytes in 1 MiB items. Neither holds more than a
    block in memory."""
    path = environ.get("PATH_INFO", "")
    if path == "/count":
        total = 0
        stream = environ["wsgi.input"]
        while True:
            block = stream.read(65536)
            if not block:
                break
            total += len(block)
        body = str(total).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    size = int(environ.get("QUERY_STRING") or 0)
    block = b"z" * (1 << 20)
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])

    def blocks():
        left = size
        while left > 0:
            n = min(left, len(block))
            yield block[:n] if n < len(block) else block
            left -= n

    return blocks()
