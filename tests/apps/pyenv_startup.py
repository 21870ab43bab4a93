# Loaded by WSGIImportScript when each child starts: the mod_wsgi and apache
# modules must already be importable here, and the shutdown and event
# subscriptions made here must hold for the whole process.
import atexit
import os
import sys

import apache
import mod_wsgi

STATE = "@@STATE_DIR@@"
ATEXIT_RAN = []


def append(name, line):
    with open(os.path.join(STATE, name), "a") as f:
        f.write(line + "\n")


append("startup.txt", "%d process_group=%r mpm=%s argv=%r" % (
    os.getpid(), mod_wsgi.process_group, apache.mpm_name, sys.argv))


def on_shutdown(event, **kwargs):
    append("shutdown.txt", "%d %s reason=%r atexit_already=%s" % (
        os.getpid(), event, kwargs.get("shutdown_reason"), bool(ATEXIT_RAN)))


def on_atexit():
    ATEXIT_RAN.append(True)
    append("atexit.txt", str(os.getpid()))


def wrap(application):
    def wrapped(environ, start_response):
        def start(status, headers, exc_info=None):
            return start_response(status, headers + [("X-Wrapped", "by request_started")], exc_info)
        return application(environ, start)
    return wrapped


def on_event(event, **kwargs):
    if event != "request_started":
        return None
    path = kwargs["request_environ"].get("PATH_INFO", "")
    if path == "/callback-raises":
        raise ValueError("this callback fails on purpose")
    if path == "/wrapped":
        return {"application_object": wrap(kwargs["application_object"])}
    return None


mod_wsgi.subscribe_shutdown(on_shutdown)
mod_wsgi.subscribe_events(on_event)
atexit.register(on_atexit)
