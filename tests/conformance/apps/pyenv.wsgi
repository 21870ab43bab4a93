# What an application sees of the server besides the environ: the std
# streams, the mod_wsgi and apache modules, sys.argv. Served by both modules
# from the same file; /facts answers a JSON object of named facts, which the
# conformance suite compares key by key. Other paths exercise behaviour
# whose effect is checked in the error log.
import io
import json
import os
import sys

import apache
import mod_wsgi

# Module-level use, as Mercurial and django-rosetta do at import time.
sys.stdout.buffer.write(b"pyenv: imported with sys.stdout.buffer\n")
sys.stdout.buffer.flush()
IMPORT_GROUP = mod_wsgi.process_group


def on_event(name, **kwargs):
    """Marks request_data (the application reads it back) and writes every
    event but request_started to the error log, where the suite looks for
    them: the child that served a request is not the one that answers the
    next."""
    if name == "request_started":
        data = kwargs["request_data"]
        data["seen_by_callback"] = True
        data["started_args"] = sorted(kwargs)
        return
    if kwargs.get("request_data", {}).get("quiet"):
        return
    request_id = kwargs.get("request_id", "")
    detail = ""
    if name == "request_exception":
        detail = " exception=%s" % kwargs["exception_info"][0].__name__
    if name == "request_finished":
        detail = " application_time=%s" % isinstance(kwargs.get("application_time"), float)
    sys.stderr.write("pyenv-event %s %s args=%s%s\n" % (name, request_id, ",".join(sorted(kwargs)), detail))


def on_shutdown(name, **kwargs):
    sys.stderr.write("pyenv-shutdown %s args=%s\n" % (name, ",".join(sorted(kwargs))))


if not getattr(mod_wsgi, "_pyenv_subscribed", False):
    mod_wsgi.subscribe_events(on_event)
    mod_wsgi.subscribe_shutdown(on_shutdown)
    mod_wsgi._pyenv_subscribed = True


def fileno_raises(stream):
    try:
        stream.fileno()
    except OSError:
        return "OSError"
    except Exception as e:  # noqa: BLE001 - the kind is the fact
        return type(e).__name__
    return "no exception"


def stream_facts(prefix, stream):
    return {
        prefix + ".type": type(stream).__name__,
        prefix + ".is_TextIOBase": isinstance(stream, io.TextIOBase),
        prefix + ".has_buffer": hasattr(stream, "buffer"),
        prefix + ".encoding": getattr(stream, "encoding", None),
        prefix + ".errors": getattr(stream, "errors", None),
        prefix + ".line_buffering": getattr(stream, "line_buffering", None),
        prefix + ".name": getattr(stream, "name", None),
        prefix + ".isatty": stream.isatty(),
        prefix + ".readable": stream.readable(),
        prefix + ".writable": stream.writable(),
        prefix + ".closed": stream.closed,
        prefix + ".fileno": fileno_raises(stream),
        prefix + ".buffer.fileno": fileno_raises(stream.buffer) if hasattr(stream, "buffer") else None,
    }


def facts(environ):
    out = {}
    out.update(stream_facts("sys.stdout", sys.stdout))
    out.update(stream_facts("sys.stderr", sys.stderr))
    out.update(stream_facts("wsgi.errors", environ["wsgi.errors"]))
    out["sys.argv"] = sys.argv
    out["sys.stdin.type"] = type(sys.stdin).__name__
    for name in ("version", "process_group", "application_group", "maximum_processes",
                 "threads_per_process", "FileWrapper", "subscribe_events", "subscribe_shutdown",
                 "event_callbacks", "shutdown_callbacks", "active_requests", "request_data",
                 "server_metrics", "process_metrics"):
        out["mod_wsgi.has." + name] = hasattr(mod_wsgi, name)
    out["mod_wsgi.version.type"] = type(mod_wsgi.version).__name__
    out["mod_wsgi.version.len"] = len(mod_wsgi.version)
    out["mod_wsgi.process_group"] = mod_wsgi.process_group
    out["mod_wsgi.process_group.at_import"] = IMPORT_GROUP
    out["mod_wsgi.application_group"] = mod_wsgi.application_group
    out["mod_wsgi.maximum_processes"] = mod_wsgi.maximum_processes
    out["mod_wsgi.threads_per_process"] = mod_wsgi.threads_per_process
    out["mod_wsgi.FileWrapper.is_file_wrapper"] = mod_wsgi.FileWrapper is environ["wsgi.file_wrapper"]
    data = mod_wsgi.request_data()
    data["quiet"] = True
    out["mod_wsgi.request_data.type"] = type(data).__name__
    out["mod_wsgi.request_data.seen_by_callback"] = data.get("seen_by_callback")
    out["mod_wsgi.request_started.args"] = data.get("started_args")
    active = mod_wsgi.active_requests
    out["mod_wsgi.active_requests.type"] = type(active).__name__
    out["mod_wsgi.active_requests.has_this"] = any(v is data for v in active.values())
    out["mod_wsgi.server_metrics"] = repr(mod_wsgi.server_metrics())
    metrics = mod_wsgi.process_metrics()
    out["mod_wsgi.process_metrics.keys"] = sorted(metrics)
    out["mod_wsgi.process_metrics.pid_is_os_pid"] = metrics["pid"] == os.getpid()
    out["mod_wsgi.process_metrics.active_at_least_1"] = metrics["active_requests"] >= 1
    out["apache.version.type"] = type(apache.version).__name__
    out["apache.version"] = list(apache.version)
    out["apache.mpm_name"] = apache.mpm_name
    out["apache.maximum_processes"] = apache.maximum_processes
    out["apache.threads_per_process"] = apache.threads_per_process
    out["apache.description.starts"] = apache.description.split("/")[0]
    out["apache.build_date.type"] = type(apache.build_date).__name__
    return out


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/facts":
        body = json.dumps(facts(environ), sort_keys=True).encode()
    elif path == "/write":
        # Text, bytes and a partial line through each stream; each must
        # reach the error log as whole lines.
        marker = environ.get("QUERY_STRING", "")
        print("pyenv-print", marker)
        sys.stdout.buffer.write(("pyenv-stdout-buffer %s\n" % marker).encode())
        sys.stderr.write("pyenv-stderr %s\n" % marker)
        environ["wsgi.errors"].write("pyenv-errors %s\n" % marker)
        environ["wsgi.errors"].buffer.write(("pyenv-errors-buffer %s\n" % marker).encode())
        environ["wsgi.errors"].writelines(["pyenv-errors-lines-1 %s\n" % marker, "pyenv-errors-lines-2 %s\n" % marker])
        environ["wsgi.errors"].write("pyenv-errors-unterminated %s" % marker)
        print("pyenv-non-ascii é€", marker)
        body = b"written"
    elif path == "/pid":
        # Which process runs the application: the suite checks that it is one of
        # the server's daemons in daemon mode and an Apache child otherwise.
        mod_wsgi.request_data()["quiet"] = True
        body = json.dumps({"pid": os.getpid(), "process_group": mod_wsgi.process_group}).encode()
    elif path == "/raise":
        raise LookupError("raised by the probe")
    elif path == "/close":
        # Closing the streams must not break logging for later requests.
        sys.stdout.close()
        environ["wsgi.errors"].close()
        body = b"closed"
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"unknown probe path"]
    start_response("200 OK", [("Content-Type", "application/json" if path in ("/facts", "/pid") else "text/plain")])
    return [body]
