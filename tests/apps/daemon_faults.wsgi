# Runs in a daemon process group and fails in the ways tests/daemon_failures.rs maps
# to statuses and log lines. Paths:
#   /where            {"pid": ..., "sys_path": [...]}: who answered, with which settings
#   /sleep?SECONDS    sleeps, then answers "slept"
#   /sleep-after-head?SECONDS
#                     sends the head and a first chunk, sleeps, then the rest
#   /head?BYTES       a 200 whose X-Padding header makes the head about BYTES long
#   /exit-before-head os._exit(3) before start_response
#   /exit-after-head  sends the head and 256 KiB, then os._exit(4)
#   /slow-exit        registers an atexit handler that takes 3 s (a process that has
#                     work to finish when it stops)
#   /busy             {"pid": ..., "active": N}: requests running in this process,
#                     this one included (tests/daemon_faults.rs)
#   /sleep-pid?SECONDS
#                     sleeps, then answers "slept in pid N"
import atexit
import json
import mod_wsgi
import os
import sys
import time


def _seconds(environ):
    return float(environ.get("QUERY_STRING") or 0)


def _text(start_response, body):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _sleep_after_head(seconds):
    yield b"first chunk\n"
    time.sleep(seconds)
    yield b"after the sleep\n"


def _exit_after_head():
    # Larger than anything the response path holds back, and given time to
    # reach the Apache child before the process ends.
    yield b"p" * 262144
    time.sleep(0.5)
    os._exit(4)
    yield b"never sent"


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/where":
        body = json.dumps({"pid": os.getpid(), "sys_path": sys.path}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/sleep":
        time.sleep(_seconds(environ))
        return _text(start_response, b"slept")
    if path == "/sleep-pid":
        time.sleep(_seconds(environ))
        return _text(start_response, b"slept in pid %d" % os.getpid())
    if path == "/busy":
        body = json.dumps({"pid": os.getpid(), "active": len(mod_wsgi.active_requests)}).encode()
        return _text(start_response, body)
    if path == "/sleep-after-head":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _sleep_after_head(_seconds(environ))
    if path == "/head":
        size = int(environ.get("QUERY_STRING") or 0)
        # "200 OK" and Content-Type/text/plain with their separators are 32 bytes.
        padding = "x" * max(0, size - 32 - len("X-Padding") - 4)
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Padding", padding)])
        return [b"a head of about %d bytes" % size]
    if path == "/exit-before-head":
        os._exit(3)
    if path == "/slow-exit":
        atexit.register(time.sleep, 3)
        return _text(start_response, b"registered")
    if path == "/exit-after-head":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _exit_after_head()
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such path"]
