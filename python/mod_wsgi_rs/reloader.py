# Loaded into each daemon process with WSGIImportScript by mod_wsgi_rs-express
# --reload-on-changes. A thread polls the files of every imported module and the WSGI script;
# on a change it sends the process SIGINT, on which mod_wsgi_rs starts a successor and retires
# this process once the successor is ready, so no request fails and the successor imports
# everything afresh.
#
# This file is copied into the server root with a call to watch() appended, so it must need
# nothing but the standard library.

import os
import signal
import sys
import threading
import time


def _module_files():
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str):
            yield path


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


# How far a file's modification time may lag the clock: Linux stamps files from a clock that
# advances once per tick (4 ms at HZ=250, 10 ms at HZ=100), so a file written just after this
# process started can carry a time just before it.
_TIMESTAMP_LAG_NS = 20_000_000


def watch(extra_files, interval):
    # A module first seen at a poll counts as changed if its file is newer than this: it may
    # have been written after the import. Set back by the timestamps' lag, so that an edit made
    # right after the start is not taken for the version imported (at worst a file written just
    # before the start replaces the process once more).
    started = time.time_ns() - _TIMESTAMP_LAG_NS
    seen = {path: _mtime(path) for path in extra_files}

    def changed_file():
        for path in [*_module_files(), *extra_files]:
            mtime = _mtime(path)
            if path not in seen:
                seen[path] = mtime
                # Imported since the last poll: a file newer than the start may have
                # changed after it was imported.
                if mtime is not None and mtime > started:
                    return path
            elif mtime != seen[path]:
                return path
        return None

    def poll():
        while True:
            time.sleep(interval)
            path = changed_file()
            if path is not None:
                print(f"mod_wsgi_rs-express: {path} changed; replacing process {os.getpid()}",
                      file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGINT)
                return

    threading.Thread(target=poll, name="wsgi-rs-reloader", daemon=True).start()
