# Optimisation-level probe. The test replaces @@HELPER_DIR@@ with a directory that
# www-data may write to and that holds probe_helper.py, so the __pycache__ file the
# import produces shows the level the interpreter caches bytecode at (at levels 1 and 2
# it goes to the bytecode cache, sys.pycache_prefix, instead).
import glob
import json
import os
import sys

HELPER_DIR = '@@HELPER_DIR@@'
if HELPER_DIR not in sys.path:
    sys.path.insert(0, HELPER_DIR)


def _script_assert_raises():
    # compiled together with this script, by the module
    try:
        assert False, 'assert in the WSGI script'
    except AssertionError:
        return True
    return False


def _script_documented():
    """A docstring in the WSGI script."""


def _dynamic_assert_raises():
    # compiled at run time with the interpreter's default level
    try:
        exec(compile('assert False', '<probe>', 'exec'))
    except AssertionError:
        return True
    return False


def application(environ, start_response):
    import probe_helper
    pyc = sorted(
        os.path.basename(p)
        for p in glob.glob(os.path.join(HELPER_DIR, '__pycache__',
                                        'probe_helper.cpython-311*.pyc')))
    data = {
        'optimize': sys.flags.optimize,
        'debug': __debug__,
        'script_assert_raises': _script_assert_raises(),
        'script_doc_is_none': _script_documented.__doc__ is None,
        'dynamic_assert_raises': _dynamic_assert_raises(),
        'helper_assert_raises': probe_helper.assert_raises(),
        'helper_doc_is_none': probe_helper.documented.__doc__ is None,
        'helper_debug': probe_helper.DEBUG,
        'helper_cached': os.path.basename(probe_helper.__cached__ or ''),
        'helper_cached_dir': os.path.dirname(probe_helper.__cached__ or ''),
        'pycache_prefix': sys.pycache_prefix or '',
        'pyc': pyc,
        'pid': os.getpid(),
        'python': sys.version.split()[0],
    }
    body = json.dumps(data).encode('utf-8')
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
