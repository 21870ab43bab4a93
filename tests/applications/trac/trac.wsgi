# Trac's WSGI entry point for one project environment.
from trac.web.main import dispatch_request


def application(environ, start_response):
    environ["trac.env_path"] = "@@ENV@@"
    return dispatch_request(environ, start_response)
