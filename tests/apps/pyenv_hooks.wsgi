# Requests that exercise the mod_wsgi module beyond what the conformance
# probe compares: request_data() across threads, metrics, a wrapped
# application, a detached wsgi.errors.
import io
import json
import os
import threading

import mod_wsgi


def outside_request():
    """request_data() from a thread that is not serving a request."""
    result = {}

    def probe():
        try:
            mod_wsgi.request_data()
            result["raised"] = None
        except RuntimeError as e:
            result["raised"] = str(e)

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return result


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/data":
        data = mod_wsgi.request_data()
        data["mine"] = environ["mod_wsgi.request_id"]
        active = mod_wsgi.active_requests
        body = {
            "same_dict_twice": mod_wsgi.request_data() is data,
            "active_has_me": active.get(environ["mod_wsgi.request_id"]) is data,
            "outside": outside_request(),
        }
    elif path == "/metrics":
        m = mod_wsgi.process_metrics()
        body = {
            "pid": m["pid"] == os.getpid(),
            "request_count": m["request_count"],
            "busy_is_float": isinstance(m["request_busy_time"], float),
            "rss_sane": 1 << 20 < m["memory_rss"] <= m["memory_max_rss"] * 1.01,
            "rss": [m["memory_rss"], m["memory_max_rss"]],
            "cpu_is_float": isinstance(m["cpu_user_time"], float) and isinstance(m["cpu_system_time"], float),
            "active_requests": m["active_requests"],
            "threads": m["threads"],
            "request_threads": m["request_threads"],
            "running_time_is_int": isinstance(m["running_time"], int),
        }
    elif path == "/detach":
        # The error log has no separate buffer to hand over; detaching is
        # refused as Python's own streams refuse what they cannot do.
        environ["wsgi.errors"].write("pyenv-hooks before detach\n")
        try:
            environ["wsgi.errors"].detach()
            body = {"detach": "allowed"}
        except io.UnsupportedOperation as e:
            body = {"detach": "UnsupportedOperation", "message": str(e)}
        environ["wsgi.errors"].write("pyenv-hooks after the detach attempt\n")
    elif path == "/write":
        environ["wsgi.errors"].write("pyenv-hooks wsgi.errors %s\n" % environ.get("QUERY_STRING"))
        body = {"written": True}
    else:
        body = {"path": path}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
