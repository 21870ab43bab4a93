# Serves another test app wrapped in wsgiref.validate.validator, so every request also
# checks the server side against PEP 3333 (a complaint is an AssertionError or a
# WSGIWarning in the error log).
import hashlib
import importlib.machinery
import importlib.util
from wsgiref.validate import validator

TARGET = '@@TARGET@@'
CALLABLE = '@@CALLABLE@@'


def _load(path):
    name = 'rp_validated_' + hashlib.sha1(path.encode()).hexdigest()[:12]
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


application = validator(getattr(_load(TARGET), CALLABLE))
globals()[CALLABLE] = application
