#!/usr/bin/env python3
"""Instructions per request, counted by valgrind's callgrind, for the hello case
of each server bench.py compares: mod_wsgi_rs, mod_wsgi, mod_python, the C
handler and the static file.

Wall-clock figures on a shared machine drift with whatever else runs; an
instruction count does not. Each server is the same private Apache bench.py
configures (prefork), run as one process (`apache2 -X`) under callgrind, twice:
once with the warm-up alone, once with REQUESTS more requests over the same
keep-alive connection. The difference of the two totals, divided by REQUESTS, is
what the Apache process ran per request (Apache, APR, the module, Python).
Kernel time is not counted.

    python3 bench/callgrind.py                    # all servers, table to stdout
    python3 bench/callgrind.py --servers mod_wsgi_rs static --requests 500
"""

import argparse
import http.client
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the benchmark's server configurations)

WARMUP = 200


def keep_alive_requests(port, path, count, expected):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(count):
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200 or body != expected:
            raise SystemExit(f"GET {path}: {response.status} {body[:80]!r}")
    connection.close()


def wait_until_serving(port, path, expected, seconds=180):
    deadline = time.monotonic() + seconds
    while True:
        try:
            keep_alive_requests(port, path, 1, expected)
            return
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise SystemExit(f"nothing served {path} on port {port} within {seconds} s")
            time.sleep(0.5)


def instructions_for(server, requests, tag):
    """Runs `server` under callgrind for `requests` keep-alive requests (after
    the warm-up) and returns every instruction the process ran, start to exit."""
    out = os.path.join(server.root, f"callgrind.{tag}.out")
    expected = bench.C_HANDLER_BODY if server.kind == "c_handler" else bench.HELLO
    path = server.hello_path()
    # No vgdb: Apache drops to its User, which could not open the FIFOs
    # valgrind made as root; the counts are read from the file at exit.
    # Callgrind opens its file at start, as root, and writes the counts at
    # exit, as Apache's User: the file must be that user's already.
    open(out, "w").close()
    subprocess.run(["chown", "www-data", out], check=True)
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--vgdb=no", f"--callgrind-out-file={out}",
         bench.APACHE, "-X", "-f", server.conf],
        env=bench.APACHE_ENV, stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(server.root, f"valgrind.{tag}.log"), "w"))
    try:
        wait_until_serving(server.port, path, expected)
        keep_alive_requests(server.port, path, WARMUP + requests, expected)
    finally:
        process.terminate()
        process.wait(timeout=300)
    with open(out) as f:
        for line in f:
            found = re.match(r"(?:summary|totals): (\d+)", line)
            if found:
                return int(found.group(1))
    raise SystemExit(f"{server.kind}: no counts in {out} (see valgrind.{tag}.log)")


def instructions_per_request(server, requests):
    """The difference between a run of `requests` and a run of none, per
    request: start-up, warm-up and shutdown cancel out."""
    base = instructions_for(server, 0, "base")
    loaded = instructions_for(server, requests, "loaded")
    return (loaded - base) / requests


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", nargs="+", default=bench.SERVERS, choices=bench.SERVERS)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="mod_wsgi_rs-callgrind-")
    bench.prepare_work(work)
    c_handler_so = bench.build_c_handler(work) if "c_handler" in args.servers else None
    rows = []
    for kind in args.servers:
        server = bench.Server(kind, "prefork", work, None, c_handler_so=c_handler_so)
        per_request = instructions_per_request(server, args.requests)
        rows.append((kind, per_request))
        print(f"{bench.server_name(kind)}: {per_request:,.0f} instructions per request", file=sys.stderr, flush=True)
    static = dict(rows).get("static")
    print("| server | instructions per request | vs static file |")
    print("|---|---|---|")
    for kind, per_request in rows:
        ratio = f"{per_request / static:.2f}x" if static else "—"
        print(f"| {bench.server_name(kind)} | {per_request:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
