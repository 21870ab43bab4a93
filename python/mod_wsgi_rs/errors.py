"""The one kind of failure mod_wsgi_rs-express reports: a message a person can act on."""


class ExpressError(Exception):
    """Printed as `mod_wsgi_rs-express: MESSAGE`, exit status 1, no traceback."""
