#!/usr/bin/env python3
"""Soak runs of mod_wsgi_rs: the long versions of tests/client_faults.rs and
tests/load_restarts.rs, against private Apache servers (event and prefork MPMs).

Checks, each reported PASS or FAIL with its figures:

  disconnects   1,000 clients leave in the middle of a large streamed response:
                close() ran 1,000 times; the child's open descriptors and VmRSS
                before and after (after a warm-up round of 50)
  mix           60 s of wrk at 64 connections on a mix (hello, 1 MiB body, 64 KiB
                POST echo, 10% raising -> 500): no unexpected status or body, no
                socket error, every 500 logged as the application's exception
  leak-hello    1,000,000 hello requests on one child: VmRSS after 50,000 and at
                the end (must grow < 2 MiB), descriptors stable
  leak-post     100,000 POSTs of 64 KiB on that child: the same
  leak-file     100,000 wsgi.file_wrapper responses (64 KiB file): the same
  graceful      20 graceful restarts under load (event and prefork): no failed
                request, connection errors included
  restart       20 full restarts (prefork under load; event idle, see below): the
                server answers after each, no "still did not exit", every child
                that served ran its atexit handler (Python finalised)
  daemon-leak   1,000,000 hello requests (--daemon-requests) through one daemon
                process (WSGIDaemonProcess processes=1): its VmRSS sampled every
                second, from the end of a 50,000-request warm-up to the end (must
                grow < 2 MiB), descriptors stable, the same daemon throughout
  daemon-graceful, daemon-touch, daemon-recycle
                under load (8 clients on a daemon group of 2 processes), 20
                graceful restarts of Apache, 20 touches of the WSGI script and 20
                maximum-requests recycles: no failed request, and the p99 latency
                of the requests made while each kind of event was under way,
                beside the p99 of the same load with no event

Exits non-zero if any check fails; writes the results to SOAK.md.

    python3 bench/soak.py            # the full run (about 10-15 minutes)
    python3 bench/soak.py --quick    # every check scaled down, for a smoke test
    python3 bench/soak.py --only daemon --daemon-requests 200000
"""

import argparse
import datetime
import http.client
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from bench import children_of

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "bench")
MODULES = "/usr/lib/apache2/modules"
APACHE = "/usr/sbin/apache2"
OUR_SO = os.path.join(REPO, "target", "release", "libmod_wsgi_rs.so")
APACHE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
MIB = 1024 * 1024
RSS_LIMIT_KIB = 2048
CRASH_MARKERS = ["exit signal", "Fatal Python error", "Segmentation fault", "panicked at"]
KILL_MARKERS = ["still did not exit", "could not make child process"]

ONE_CHILD = ["LoadModule mpm_event_module {m}/mod_mpm_event.so", "ServerLimit 1", "StartServers 1",
             "ThreadLimit 16", "ThreadsPerChild 16", "MaxRequestWorkers 16", "MinSpareThreads 1",
             "MaxSpareThreads 16"]
EVENT = ["LoadModule mpm_event_module {m}/mod_mpm_event.so", "StartServers 2", "ThreadsPerChild 32",
         "MaxRequestWorkers 128", "MinSpareThreads 16", "MaxSpareThreads 96"]
# The mix: as EVENT, with a worker thread for every connection in either child. When
# all of a child's workers are busy, the event MPM closes connections waiting in
# keep-alive even though their KeepAliveTimeout has not expired; a client that has just
# sent its next request on one sees the connection close (wrk counts a read error).
MIX_EVENT = ["LoadModule mpm_event_module {m}/mod_mpm_event.so", "StartServers 2", "ThreadLimit 64",
             "ThreadsPerChild 64", "MaxRequestWorkers 128", "MinSpareThreads 16", "MaxSpareThreads 128"]
PREFORK = ["LoadModule mpm_prefork_module {m}/mod_mpm_prefork.so", "StartServers 4",
           "MinSpareServers 2", "MaxSpareServers 8", "ServerLimit 40", "MaxRequestWorkers 40"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def www_ids():
    if os.getuid() != 0:
        return None
    pw = pwd.getpwnam("www-data")
    return pw.pw_uid, pw.pw_gid


class Server:
    """A private Apache with mod_wsgi_rs serving bench/apps/soak.wsgi at /app."""

    def __init__(self, work, name, mpm_lines, wsgi_lines=None):
        self.root = os.path.join(work, name)
        for sub in ("logs", "apps", "static", "state"):
            os.makedirs(os.path.join(self.root, sub))
        shutil.copy(os.path.join(BENCH, "apps", "soak.wsgi"), os.path.join(self.root, "apps"))
        with open(os.path.join(self.root, "static", "64k.bin"), "wb") as f:
            f.write(b"f" * 65536)
        subprocess.run(["chmod", "-R", "a+rX", self.root], check=True)
        ids = www_ids()
        state = os.path.join(self.root, "state")
        if ids:
            os.chown(state, *ids)
        else:
            os.chmod(state, 0o777)
        self.port = free_port()
        conf = [
            f"ServerRoot {self.root}",
            f"Listen 127.0.0.1:{self.port}",
            f"PidFile {self.root}/logs/httpd.pid",
            f"DefaultRuntimeDir {self.root}/logs",
            f"Mutex file:{self.root}/logs default",
            f"ErrorLog {self.root}/logs/error.log",
            "LogLevel warn",
            "ServerName localhost",
            *(["User www-data", "Group www-data"] if ids else []),
            "KeepAlive On",
            "MaxKeepAliveRequests 0",
            "MaxConnectionsPerChild 0",
            *[line.format(m=MODULES) for line in mpm_lines],
            f"LoadModule authn_core_module {MODULES}/mod_authn_core.so",
            f"LoadModule authz_core_module {MODULES}/mod_authz_core.so",
            f"DocumentRoot {self.root}/static",
            f"LoadModule wsgi_rs_module {OUR_SO}",
            *[line.replace("@ROOT@", self.root) for line in (wsgi_lines or [])],
            f"WSGIScriptAlias /app {self.root}/apps/soak.wsgi",
        ]
        self.script = os.path.join(self.root, "apps", "soak.wsgi")
        self.conf = os.path.join(self.root, "httpd.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def control(self, action):
        r = subprocess.run([APACHE, "-f", self.conf, "-k", action], env=APACHE_ENV,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"apache2 -k {action}: {r.stderr.strip()}")

    def start(self):
        self.control("start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                status, _, _ = get(self.port, "/app/hello")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"no answer within 30 s; see {self.root}/logs/error.log")

    def stop(self):
        try:
            self.control("stop")
        except RuntimeError:
            return
        pid_file = f"{self.root}/logs/httpd.pid"
        deadline = time.monotonic() + 30
        while os.path.exists(pid_file) and time.monotonic() < deadline:
            time.sleep(0.1)

    def parent_pid(self):
        with open(f"{self.root}/logs/httpd.pid") as f:
            return int(f.read())

    def children(self):
        return children_of(self.parent_pid())

    def only_child(self):
        kids = self.children()
        if len(kids) != 1:
            raise RuntimeError(f"expected one child, found {sorted(kids)}")
        return next(iter(kids))

    def log(self):
        with open(f"{self.root}/logs/error.log", errors="replace") as f:
            return f.read()

    def record(self, name):
        try:
            with open(os.path.join(self.root, "state", name)) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def wait_record(self, name, n, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            lines = self.record(name)
            if len(lines) >= n or time.monotonic() > deadline:
                return lines
            time.sleep(0.1)

    def wait_new_generation(self, old):
        """After a restart: a child not in `old` answers, and every old child has gone."""
        deadline = time.monotonic() + 60
        pid = None
        while pid is None:
            try:
                status, headers, _ = get(self.port, "/app/hello", timeout=5)
                if status == 200 and int(headers.get("X-Pid", 0)) not in old:
                    pid = int(headers["X-Pid"])
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("no new child answered within 60 s")
            time.sleep(0.05)
        while self.children() & old:
            if time.monotonic() > deadline:
                raise RuntimeError(f"old children still running: {sorted(self.children() & old)}")
            time.sleep(0.05)
        return pid

    def atexit_pids(self):
        return {int(line) for line in self.record("atexit.txt") if line.strip().isdigit()}


def get(port, path, method="GET", body=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Connection": "close"}
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_fds(pid, target, timeout=15):
    """Descriptor count once closed connections have finished lingering."""
    deadline = time.monotonic() + timeout
    while True:
        n = fd_count(pid)
        if n <= target or time.monotonic() > deadline:
            return n
        time.sleep(0.1)


def log_hits(log, markers):
    return [line for line in log.splitlines() if any(m in line for m in markers)]


class Report:
    def __init__(self):
        self.rows = []

    def add(self, name, ok, figures):
        self.rows.append((name, ok, figures))
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {figures}", flush=True)

    def failed(self):
        return [r for r in self.rows if not r[1]]


# ---------------------------------------------------------------------------------------
# the checks

def disconnect_mid_response(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(b"GET /app/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        got = 0
        while got < 200_000:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError(f"server closed after {got} bytes")
            got += len(chunk)
    finally:
        s.close()  # with most of the response unread: the kernel sends a reset


def check_disconnects(work, report, n):
    srv = Server(work, "disconnects", ONE_CHILD)
    srv.start()
    try:
        child = srv.only_child()
        warm = 50
        for _ in range(warm):
            disconnect_mid_response(srv.port)
        srv.wait_record("closes.txt", warm)
        time.sleep(1)
        fds0, rss0 = wait_fds(child, 0, timeout=3), rss_kib(child)
        started = time.monotonic()
        for _ in range(n):
            disconnect_mid_response(srv.port)
        closes = srv.wait_record("closes.txt", warm + n)
        seconds = time.monotonic() - started
        fds1 = wait_fds(child, fds0)
        rss1 = rss_kib(child)
        measured = len(closes) - warm
        cut = sum(1 for line in closes if int(line.split()[1]) < 4000)
        crashes = log_hits(srv.log(), CRASH_MARKERS)
        same = srv.only_child() == child
        ok = (measured == n and cut == len(closes) and fds1 == fds0 and rss1 - rss0 < RSS_LIMIT_KIB
              and not crashes and same)
        report.add("disconnects", ok,
                   f"{n} disconnects mid-response in {seconds:.1f} s on child {child}: close() ran {measured} "
                   f"times ({cut} of {len(closes)} responses cut short); fds {fds0} -> {fds1}; "
                   f"VmRSS {rss0} -> {rss1} KiB ({rss1 - rss0:+d} KiB); same child: {same}; "
                   f"crash lines: {len(crashes)}")
    finally:
        srv.stop()


def check_mix(work, report, seconds):
    srv = Server(work, "mix", MIX_EVENT)
    srv.start()
    try:
        cmd = ["wrk", "-t2", "-c64", f"-d{seconds}s", "--timeout", "10s", "-s",
               os.path.join(BENCH, "soak_mix.lua"), srv.url("/app/hello")]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        m = re.search(r"^SOAKMIX (.*)$", out, re.M)
        if not m:
            raise RuntimeError(f"wrk printed no SOAKMIX line:\n{out}")
        fig = dict(re.findall(r"(\w+)=(\"[^\"]*\"|\S+)", m.group(1)))
        num = {k: int(v) for k, v in fig.items() if v.isdigit()}
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        time.sleep(2)
        log = srv.log()
        logged = len([line for line in log.splitlines() if "ValueError: soak-raised" in line])
        crashes = log_hits(log, CRASH_MARKERS)
        socket_errors = num["connect"] + num["read"] + num["write"] + num["timeout"]
        answered = num["ok_hello"] + num["ok_big"] + num["ok_echo"] + num["raised"]
        # wrk stops with up to one request per connection in flight: those may have
        # been served (and logged) without wrk counting their responses.
        ok = (num["unexpected"] == 0 and num["bad_body"] == 0 and socket_errors == 0 and not crashes
              and answered > 0 and num["raised"] <= logged <= num["raised"] + 64)
        report.add("mix", ok,
                   f"wrk {seconds} s, 64 connections: {num['requests']} responses ({rps:.0f}/s): "
                   f"{num['ok_hello']} hello, {num['ok_big']} x 1 MiB, {num['ok_echo']} x 64 KiB echo, "
                   f"{num['raised']} x 500 from the raising case ({logged} exceptions logged); "
                   f"unexpected statuses {num['unexpected']}, bad bodies {num['bad_body']}, "
                   f"socket errors {socket_errors} (connect {num['connect']}, read {num['read']}, "
                   f"write {num['write']}, timeout {num['timeout']}); crash lines {len(crashes)}"
                   + (f"; first problem {fig['first_bad']}" if fig.get("first_bad", '""') != '""' else ""))
    finally:
        srv.stop()


def wrk_until(srv, path, target, script=None, done=0):
    """Runs wrk (2 threads, 8 keep-alive connections) until at least `target` requests
    have completed in total (counting `done` from before); returns the new total."""
    total, rate = done, None
    while total < target:
        left = target - total
        secs = 2 if rate is None else max(1, min(120, int(left / rate * 1.05) + 1))
        cmd = ["wrk", "-t2", "-c8", f"-d{secs}s", "--timeout", "10s"]
        if script:
            cmd += ["-s", os.path.join(BENCH, script)]
        out = subprocess.run(cmd + [srv.url(path)], capture_output=True, text=True, check=True).stdout
        n = int(re.search(r"(\d+) requests in", out).group(1))
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        if bad or errors:
            raise RuntimeError(f"wrk on {path}: {bad.group(0) if bad else ''} {errors.group(0) if errors else ''}")
        rate = n / secs
        total += n
    return total


def check_leaks(work, report, hello_total, other_total, warm):
    srv = Server(work, "leaks", ONE_CHILD)
    srv.start()
    try:
        child = srv.only_child()
        for name, path, script, total in [("leak-hello", "/app/hello", None, hello_total),
                                          ("leak-post", "/app/echo", "post.lua", other_total),
                                          ("leak-file", "/app/file", None, other_total)]:
            started = time.monotonic()
            done = wrk_until(srv, path, warm, script)
            at_baseline = done
            time.sleep(1)
            fds0, rss0 = wait_fds(child, 0, timeout=3), rss_kib(child)
            done = wrk_until(srv, path, total, script, done)
            time.sleep(1)
            fds1, rss1 = wait_fds(child, fds0), rss_kib(child)
            same = srv.only_child() == child
            crashes = log_hits(srv.log(), CRASH_MARKERS)
            ok = rss1 - rss0 < RSS_LIMIT_KIB and fds1 == fds0 and same and not crashes
            report.add(name, ok,
                       f"{done} requests to {path} on child {child} in {time.monotonic() - started:.0f} s: "
                       f"VmRSS {rss0} KiB after {at_baseline} -> {rss1} KiB at the end ({rss1 - rss0:+d} KiB, "
                       f"limit < {RSS_LIMIT_KIB}); fds {fds0} -> {fds1}; same single child: {same}; "
                       f"crash lines: {len(crashes)}")
    finally:
        srv.stop()


class Load:
    """Python clients running the mix (Connection: close) until stopped."""

    PLAN = ["hello", "big", "hello", "echo", "hello", "raise", "hello", "big", "hello", "echo"]

    def __init__(self, port, threads):
        self.port, self.stop_flag = port, threading.Event()
        self.lock = threading.Lock()
        self.ok = self.failed = 0
        self.failures, self.pids = [], set()
        self.echo = os.urandom(65536)
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)]
        for t in self.threads:
            t.start()

    def one(self, case):
        if case == "echo":
            status, headers, body = get(self.port, "/app/echo", "POST", self.echo)
            good = status == 200 and body == self.echo
        else:
            status, headers, body = get(self.port, "/app/" + case)
            good = {"hello": status == 200 and body == b"Hello world\n",
                    "big": status == 200 and len(body) == MIB,
                    "raise": status == 500}[case]
        if not good:
            raise RuntimeError(f"{case}: status {status}, {len(body)} bytes")
        return int(headers["X-Pid"]) if "X-Pid" in headers else None

    def run(self, i):
        while not self.stop_flag.is_set():
            case = self.PLAN[i % len(self.PLAN)]
            i += 1
            try:
                pid = self.one(case)
                with self.lock:
                    self.ok += 1
                    if pid:
                        self.pids.add(pid)
            except Exception as e:  # a transport error is a failure too
                with self.lock:
                    self.failed += 1
                    if len(self.failures) < 5:
                        self.failures.append(f"{case}: {e!r}")

    def finish(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join()
        return self


def check_restarts(work, report, mpm, count):
    lines = EVENT if mpm == "event" else PREFORK
    srv = Server(work, f"restarts-{mpm}", lines)
    srv.start()
    served = set()
    try:
        # graceful restarts under load
        load = Load(srv.port, 16)
        time.sleep(1)
        started = time.monotonic()
        for _ in range(count):
            old = srv.children()
            srv.control("graceful")
            served.add(srv.wait_new_generation(old))
            time.sleep(0.3)
        load.finish()
        served |= load.pids
        log = srv.log()
        kills, crashes = log_hits(log, KILL_MARKERS), log_hits(log, CRASH_MARKERS)
        ok = load.failed == 0 and load.ok > 0 and not kills and not crashes
        report.add(f"graceful-{mpm}", ok,
                   f"{count} graceful restarts in {time.monotonic() - started:.0f} s under load (16 clients): "
                   f"{load.ok} requests answered as expected, {load.failed} failed"
                   + (f" (first: {load.failures[0]})" if load.failures else "")
                   + f"; kill warnings {len(kills)}; crash lines {len(crashes)}")

        # full restarts: prefork under load; event idle (see SOAK.md)
        load = Load(srv.port, 8) if mpm == "prefork" else None
        started = time.monotonic()
        answered = 0
        for _ in range(count):
            time.sleep(0.5)
            if load is None:
                for _ in range(20):
                    status, headers, _ = get(srv.port, "/app/hello")
                    if status == 200:
                        served.add(int(headers["X-Pid"]))
            old = srv.children()
            srv.control("restart")
            served.add(srv.wait_new_generation(old))
            answered += 1
        if load:
            load.finish()
            served |= load.pids
        live = srv.children()
        atexit_before_stop = srv.atexit_pids()
        gone = served - live
        missing_at_restarts = sorted(gone - atexit_before_stop)
        srv.stop()
        missing = sorted(served - srv.atexit_pids())
        log = srv.log()
        kills, crashes = log_hits(log, KILL_MARKERS), log_hits(log, CRASH_MARKERS)
        ok = (answered == count and not kills and not crashes and not missing_at_restarts and not missing)
        load_text = (f"under load (8 clients: {load.ok} answered, {load.failed} cut by the restarts)"
                     if load else "without requests in flight")
        report.add(f"restart-{mpm}", ok,
                   f"{count} full restarts in {time.monotonic() - started:.0f} s {load_text}: answered after "
                   f"{answered} of {count}; {len(served)} children served, {len(gone)} exited at restarts, "
                   f"{len(served) - len(missing)} ran atexit (missing: {missing or 'none'}); "
                   f"'still did not exit' and other kill warnings {len(kills)}; crash lines {len(crashes)}"
                   + (f": {kills[0]}" if kills else "") + (f": {crashes[0]}" if crashes else ""))
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------
# daemon mode

def daemon_pids(group):
    """The running daemons of a group started with display-name=%{GROUP}."""
    title = f"(wsgi:{group})".encode()
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if title in f.read():
                        pids.add(int(entry))
            except OSError:
                pass
    return pids


class RssSampler:
    """Samples a process's VmRSS once a second until stopped."""

    def __init__(self, pid):
        self.pid, self.samples = pid, []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_flag.wait(1.0):
            try:
                self.samples.append((time.monotonic(), rss_kib(self.pid)))
            except (OSError, RuntimeError):
                return

    def finish(self):
        self.stop_flag.set()
        self.thread.join()
        return self.samples


def check_daemon_leak(work, report, total, warm):
    group = f"soak-{os.getpid()}"
    srv = Server(work, "daemon-leak", ONE_CHILD,
                 [f"WSGIDaemonProcess {group} processes=1 threads=16 display-name=%{{GROUP}}",
                  f"WSGIProcessGroup {group}"])
    srv.start()
    try:
        (daemon,) = daemon_pids(group)
        started = time.monotonic()
        done = wrk_until(srv, "/app/hello", warm)
        at_baseline = done
        time.sleep(1)
        fds0, rss0 = wait_fds(daemon, 0, timeout=3), rss_kib(daemon)
        sampler = RssSampler(daemon)
        done = wrk_until(srv, "/app/hello", total, done=done)
        samples = sampler.finish()
        time.sleep(1)
        fds1, rss1 = wait_fds(daemon, fds0), rss_kib(daemon)
        peak = max([rss for _, rss in samples] + [rss1])
        same = daemon_pids(group) == {daemon}
        crashes = log_hits(srv.log(), CRASH_MARKERS)
        seconds = time.monotonic() - started
        # The Apache child keeps one connection to the daemon per thread that used it.
        ok = rss1 - rss0 < RSS_LIMIT_KIB and fds1 <= fds0 + 4 and same and not crashes
        report.add("daemon-leak", ok,
                   f"{done} requests to /app/hello through daemon {daemon} (1 process, 16 threads) in {seconds:.0f} s "
                   f"({done / seconds:.0f}/s): VmRSS {rss0} KiB after {at_baseline} -> {rss1} KiB at the end "
                   f"({rss1 - rss0:+d} KiB, limit < {RSS_LIMIT_KIB}); {len(samples)} samples after the warm-up, "
                   f"highest {peak} KiB; fds {fds0} -> {fds1}; same daemon: {same}; crash lines: {len(crashes)}")
    finally:
        srv.stop()


class TimedLoad:
    """Clients requesting `path` (Connection: close) until stopped, recording when
    each request started, how long it took and whether it was answered as expected."""

    def __init__(self, port, path, threads):
        self.port, self.path = port, path
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.records, self.failures, self.pids = [], [], set()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self):
        while not self.stop_flag.is_set():
            t0 = time.monotonic()
            try:
                status, headers, body = get(self.port, self.path)
                ok = status == 200 and body == b"Hello world\n"
                why = None if ok else f"status {status}, {len(body)} bytes"
            except Exception as e:  # a transport error is a failure too
                ok, headers, why = False, {}, repr(e)
            elapsed = time.monotonic() - t0
            with self.lock:
                self.records.append((t0, elapsed, ok))
                if ok and "X-Pid" in headers:
                    self.pids.add(int(headers["X-Pid"]))
                if why and len(self.failures) < 5:
                    self.failures.append(why)

    def finish(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join()
        return self

    def between(self, windows):
        """(latencies, failures) of the requests that started within any window."""
        with self.lock:
            chosen = [(e, ok) for t0, e, ok in self.records if any(a <= t0 <= b for a, b in windows)]
        return [e for e, _ in chosen], sum(1 for _, ok in chosen if not ok)


def p99_ms(latencies):
    if not latencies:
        return float("nan")
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def wait_daemons(group, done, what, timeout=60):
    """Until done(the group's running daemons) holds; returns them."""
    deadline = time.monotonic() + timeout
    while True:
        now = daemon_pids(group)
        if done(now):
            return now
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} of {group} not replaced within {timeout} s (now {sorted(now)})")
        time.sleep(0.05)


def wait_daemons_replaced(group, old):
    """Until none of `old` runs and the group has new daemons again."""
    return wait_daemons(group, lambda now: now and not (now & old), f"daemons {sorted(old)}")


def wait_daemon_replaced(group, pid, processes):
    """Until `pid` no longer runs and the group has `processes` daemons again."""
    return wait_daemons(group, lambda now: pid not in now and len(now) >= processes, f"daemon {pid}")


# The planned replacements: (kind, what the report calls `count` of them).
DAEMON_EVENTS = [
    ("graceful", "graceful restarts of Apache"),
    ("touch", "touches of the WSGI script"),
    ("sigint", "applications SIGINTing their own daemon"),
    ("sigterm", "SIGTERMs sent to a daemon"),
]


def check_daemon_events(work, report, count):
    group, recycled = f"soak-{os.getpid()}", f"soak-recycle-{os.getpid()}"
    srv = Server(work, "daemon-events", EVENT,
                 [f"WSGIDaemonProcess {group} processes=2 threads=8 display-name=%{{GROUP}}",
                  f"WSGIDaemonProcess {recycled} processes=2 threads=8 maximum-requests=500 display-name=%{{GROUP}}",
                  f"WSGIProcessGroup {group}",
                  f"WSGIScriptAlias /recycle @ROOT@/apps/soak.wsgi process-group={recycled}"])
    srv.start()
    try:
        load = TimedLoad(srv.port, "/app/hello", 8)
        time.sleep(1)
        quiet_from = time.monotonic()
        time.sleep(5)
        quiet = [(quiet_from, time.monotonic())]
        windows = {kind: [] for kind, _ in DAEMON_EVENTS}
        for kind, _ in DAEMON_EVENTS:
            for i in range(count):
                old = daemon_pids(group)
                t0 = time.monotonic()
                if kind == "graceful":
                    srv.control("graceful")
                elif kind == "touch":
                    stamp = time.time() + i + 1
                    os.utime(srv.script, (stamp, stamp))
                if kind in ("graceful", "touch"):
                    wait_daemons_replaced(group, old)
                else:
                    if kind == "sigint":
                        status, headers, _ = get(srv.port, "/app/reload")
                        if status != 200:
                            raise RuntimeError(f"/app/reload answered {status}")
                        pid = int(headers["X-Pid"])
                    else:
                        pid = min(old)
                        os.kill(pid, signal.SIGTERM)
                    wait_daemon_replaced(group, pid, len(old))
                windows[kind].append((t0, time.monotonic()))
                time.sleep(0.5)
        load.finish()
        steady, steady_failed = load.between(quiet)
        rows = {}
        for kind, _ in DAEMON_EVENTS:
            lat, failed = load.between(windows[kind])
            spans = [b - a for a, b in windows[kind]]
            rows[kind] = (lat, failed, spans)
        # maximum-requests: a load on the recycling group until `count` recycles.
        # Each recycle brings a new daemon: those beyond the first two are successors
        # (the asks-to-be-replaced lines are at info, below this server's LogLevel).
        recycle_load = TimedLoad(srv.port, "/recycle", 8)
        t0 = time.monotonic()
        deadline = t0 + 600
        recycles = 0
        while recycles < count and time.monotonic() < deadline:
            time.sleep(0.1)
            with recycle_load.lock:
                recycles = max(0, len(recycle_load.pids) - 2)
        recycle_load.finish()
        recycle_window = [(t0, time.monotonic())]
        recycle_lat, recycle_failed = recycle_load.between(recycle_window)
        log = srv.log()
        crashes, kills = log_hits(log, CRASH_MARKERS), log_hits(log, KILL_MARKERS + ["killing it"])
        base = f"steady p99 {p99_ms(steady):.1f} ms over {len(steady)} requests with no event"
        for kind, what in DAEMON_EVENTS:
            lat, failed, spans = rows[kind]
            all_failed = sum(1 for *_, ok in load.records if not ok)
            ok = failed == 0 and all_failed == 0 and len(spans) == count and not crashes and not kills
            report.add(f"daemon-{kind}", ok,
                       f"{count} {what} under load (8 clients, 2 daemons x 8 threads): daemons replaced in "
                       f"{min(spans):.1f}-{max(spans):.1f} s; {len(lat)} requests during them, p99 "
                       f"{p99_ms(lat):.1f} ms ({base}); failed {failed} during, {all_failed} in the whole run"
                       + (f" (first: {load.failures[0]})" if load.failures else "")
                       + f"; kill warnings {len(kills)}; crash lines {len(crashes)}")
        recycle_all_failed = sum(1 for *_, ok in recycle_load.records if not ok)
        ok = recycles >= count and recycle_all_failed == 0 and not crashes and not kills
        report.add("daemon-recycle", ok,
                   f"{recycles} maximum-requests recycles (maximum-requests=500, 2 daemons x 8 threads) in "
                   f"{recycle_window[0][1] - recycle_window[0][0]:.0f} s under load (8 clients): {len(recycle_lat)} "
                   f"requests, p99 {p99_ms(recycle_lat):.1f} ms ({base}); failed {recycle_all_failed}"
                   + (f" (first: {recycle_load.failures[0]})" if recycle_load.failures else "")
                   + f"; {len(recycle_load.pids)} daemons answered; kill warnings {len(kills)}; "
                   f"crash lines {len(crashes)}")
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------

def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1).strip() if m else cpu
        with open("/proc/meminfo") as f:
            mem = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1)) // 1024
    except OSError:
        mem = 0
    return f"{os.cpu_count()} CPUs ({cpu}), {mem} MiB RAM, Linux {platform.release()} {platform.machine()}"


def versions():
    apache = subprocess.run([APACHE, "-v"], capture_output=True, text=True).stdout.splitlines()
    py = subprocess.run(["/usr/bin/python3.11", "-c", "import sys; print(sys.version.split()[0])"],
                        capture_output=True, text=True).stdout.strip()
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    wrk_v = (wrk.stdout + wrk.stderr).split()[1] if (wrk.stdout + wrk.stderr).split() else "?"
    return (apache[0].replace("Server version: ", "") if apache else "Apache"), py, wrk_v


def write_markdown(path, report, args, started, elapsed):
    apache, py, wrk = versions()
    lines = [
        "# Soak results",
        "",
        f"Run on {started:%Y-%m-%d %H:%M} UTC in {elapsed / 60:.1f} minutes; {machine()}; {apache}; "
        f"Python {py}; wrk {wrk}.",
        "",
        f"Command: `make soak` (`{' '.join(['python3', 'bench/soak.py'] + sys.argv[1:])}`). "
        "Each check starts its own private Apache with mod_wsgi_rs serving bench/apps/soak.wsgi.",
        "",
        "| check | result | figures |",
        "|---|---|---|",
    ]
    for name, ok, figures in report.rows:
        lines.append(f"| {name} | {'PASS' if ok else 'FAIL'} | {figures.replace('|', '/')} |")
    lines += [
        "",
        "Notes:",
        "",
        "- disconnects, leak-*: one event-MPM child (ServerLimit 1, 16 threads, "
        "MaxConnectionsPerChild 0), so every request lands in the process being measured. "
        "Descriptor counts are read from /proc/PID/fd once closed connections have finished "
        "lingering; VmRSS from /proc/PID/status. The baseline is taken after a warm-up (50 "
        "disconnects; 50,000 requests for the leak runs), which lets each worker thread make "
        "its Python thread state and the allocators reach their working size.",
        "- mix: wrk with bench/soak_mix.lua, keep-alive, 2 threads, against two event children of 64 "
        "threads each (with fewer threads than connections the event MPM closes keep-alive "
        "connections when all workers are busy, which clients racing a new request see as a "
        "read error); the Lua script checks every "
        "response against the case that answered it (status and body).",
        "- restart-event runs without requests in flight: Apache's event MPM itself sometimes "
        "crashes a child when connections end while it shuts them down for an ungraceful restart "
        "(close_worker_sockets -> apr_os_sock_get; reproduced with static files and no module "
        "loaded). Prefork's full restarts run under load.",
        "- graceful restarts use `apache2 -f CONF -k graceful`, full ones `-k restart`.",
        "- daemon-leak: one event child as above, forwarding to one daemon process (16 threads); "
        "wrk at 8 keep-alive connections. daemon-graceful, daemon-touch, daemon-sigint, "
        "daemon-sigterm, daemon-recycle: two event "
        "children of 32 threads in front of two daemons of 8 threads; the load is 8 Python clients "
        "each making one request per connection, every response checked (status and body). "
        "A graceful or touch event lasts from the signal (or the new mtime) until every daemon "
        "that was running has exited and its successors serve; a SIGINT (the application's "
        "request to /app/reload does `os.kill(os.getpid(), signal.SIGINT)`) or SIGTERM event, "
        "from the signal until that daemon has exited and the group has its two daemons again; "
        "an event's requests are those started meanwhile. The recycle row covers the whole run of the recycling group, which replaces "
        "a daemon every 500 requests.",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every check scaled down (a smoke test)")
    parser.add_argument("--out", default=os.path.join(REPO, "SOAK.md"))
    parser.add_argument("--only", help="comma-separated checks: disconnects,mix,leaks,restarts,daemon")
    parser.add_argument("--mix-seconds", type=int, help="length of the mix run (default 60, 5 with --quick)")
    parser.add_argument("--keep", action="store_true", help="keep the servers' directories (logs) for inspection")
    parser.add_argument("--daemon-requests", type=int,
                        help="requests through one daemon in daemon-leak (default 1,000,000; 100,000 with --quick)")
    args = parser.parse_args()
    if not os.path.exists(OUR_SO):
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (make deps installs it)")
    q = args.quick
    only = set(args.only.split(",")) if args.only else {"disconnects", "mix", "leaks", "restarts", "daemon"}
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    report = Report()
    work = tempfile.mkdtemp(prefix="wsgi-rs-soak-")
    os.chmod(work, 0o755)
    try:
        steps = []
        if "disconnects" in only:
            steps.append(("disconnects", lambda: check_disconnects(work, report, 100 if q else 1000)))
        if "mix" in only:
            steps.append(("mix", lambda: check_mix(work, report, args.mix_seconds or (5 if q else 60))))
        if "leaks" in only:
            steps.append(("leaks", lambda: check_leaks(work, report, 100_000 if q else 1_000_000,
                                                       20_000 if q else 100_000, 10_000 if q else 50_000)))
        if "restarts" in only:
            for mpm in ("event", "prefork"):
                steps.append((f"restarts-{mpm}", lambda mpm=mpm: check_restarts(work, report, mpm, 3 if q else 20)))
        if "daemon" in only:
            daemon_requests = args.daemon_requests or (100_000 if q else 1_000_000)
            steps.append(("daemon-leak", lambda: check_daemon_leak(work, report, daemon_requests,
                                                                   10_000 if q else 50_000)))
            steps.append(("daemon-events", lambda: check_daemon_events(work, report, 3 if q else 20)))
        for name, step in steps:
            try:
                step()
            except Exception as e:  # a check that could not complete is a failure
                report.add(name, False, f"could not complete: {e}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    write_markdown(args.out, report, args, started, time.monotonic() - t0)
    failed = report.failed()
    print(f"{len(report.rows) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
