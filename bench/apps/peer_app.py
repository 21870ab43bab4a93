# The import target of the daemon-mode peers (granian, gunicorn), which load an
# application as module:callable: this runs bench.wsgi itself, from its own path,
# as mod_wsgi and mod_wsgi_rs do, so that every server runs the same code.
import importlib.machinery
import importlib.util
import os

_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench.wsgi")
_spec = importlib.util.spec_from_loader(
    "bench_wsgi", importlib.machinery.SourceFileLoader("bench_wsgi", _SCRIPT))
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
application = _module.application
