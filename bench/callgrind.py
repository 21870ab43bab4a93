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
    python3 bench/callgrind.py --daemon           # daemon mode: the Apache process and the daemons apart
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
    the warm-up) and returns every instruction the Apache process ran, start
    to exit, and those of the processes it forked (daemons, supervisors)."""
    out_dir = os.path.join(server.root, f"callgrind.{tag}")
    os.makedirs(out_dir)
    # No vgdb: Apache drops to its User, which could not open the FIFOs
    # valgrind made as root. One file per process (daemons are forked),
    # in a directory each can create its own in.
    os.chmod(out_dir, 0o1777)
    expected = bench.C_HANDLER_BODY if server.kind == "c_handler" else bench.HELLO
    path = server.hello_path()
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--vgdb=no", f"--callgrind-out-file={out_dir}/callgrind.out.%p",
         bench.APACHE, "-X", "-f", server.conf],
        env=bench.APACHE_ENV, stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(server.root, f"valgrind.{tag}.log"), "w"))
    try:
        wait_until_serving(server.port, path, expected)
        # Callgrind made the Apache process's file at start, as root; it is
        # written at exit, after Apache has become its User.
        subprocess.run(["chown", "www-data", f"{out_dir}/callgrind.out.{process.pid}"], check=True)
        keep_alive_requests(server.port, path, WARMUP + requests, expected)
    finally:
        process.terminate()
        process.wait(timeout=300)
        # Forked processes write their counts as they exit, after Apache.
        time.sleep(2)
    apache, forked = 0, 0
    for name in os.listdir(out_dir):
        with open(os.path.join(out_dir, name)) as f:
            total = next((int(m.group(1)) for m in map(re.compile(r"(?:summary|totals): (\d+)").match, f) if m), None)
        if total is None:
            raise SystemExit(f"{server.kind}: no counts in {out_dir}/{name} (see valgrind.{tag}.log)")
        if name == f"callgrind.out.{process.pid}":
            apache = total
        else:
            forked += total
    if not apache:
        raise SystemExit(f"{server.kind}: no counts for the Apache process in {out_dir} (see valgrind.{tag}.log)")
    return apache, forked


def instructions_per_request(server, requests):
    """The difference between a run of `requests` and a run of none, per
    request: start-up, warm-up and shutdown cancel out."""
    base = instructions_for(server, 0, "base")
    loaded = instructions_for(server, requests, "loaded")
    return tuple((after - before) / requests for before, after in zip(base, loaded))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", nargs="+", default=bench.SERVERS, choices=bench.SERVERS)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--daemon", action="store_true",
                        help="run the WSGI modules in daemon mode (bench.py's group); other servers are left out")
    args = parser.parse_args()
    if args.daemon:
        args.servers = [kind for kind in args.servers if kind in ("mod_wsgi_rs", "mod_wsgi")]
    work = tempfile.mkdtemp(prefix="mod_wsgi_rs-callgrind-")
    bench.prepare_work(work)
    c_handler_so = bench.build_c_handler(work) if "c_handler" in args.servers else None
    rows = []
    for kind in args.servers:
        server = bench.Server(kind, "prefork", work, None, daemon=args.daemon,
                              plan="prefork daemon" if args.daemon else None, c_handler_so=c_handler_so)
        apache, forked = instructions_per_request(server, args.requests)
        rows.append((kind, apache, forked))
        print(f"{bench.server_name(kind)}: {apache:,.0f} instructions per request in Apache, {forked:,.0f} in daemons",
              file=sys.stderr, flush=True)
    if args.daemon:
        print("| server | Apache process | daemons | total |")
        print("|---|---|---|---|")
        for kind, apache, forked in rows:
            print(f"| {bench.server_name(kind)} | {apache:,.0f} | {forked:,.0f} | {apache + forked:,.0f} |")
        return
    static = next((apache for kind, apache, _ in rows if kind == "static"), None)
    print("| server | instructions per request | vs static file |")
    print("|---|---|---|")
    for kind, apache, _ in rows:
        ratio = f"{apache / static:.2f}x" if static else "—"
        print(f"| {bench.server_name(kind)} | {apache:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
