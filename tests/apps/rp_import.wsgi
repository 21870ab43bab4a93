# Loaded by WSGIImportScript: its module-level code records, per process, that it ran
# (a file @@STATE_DIR@@/imported-<pid> and a marker in builtins).
import builtins
import os
import time

builtins.rp_imported_at = time.time()
with open(os.path.join('@@STATE_DIR@@', 'imported-%d' % os.getpid()), 'w') as f:
    f.write('%f' % builtins.rp_imported_at)


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'import script app']
