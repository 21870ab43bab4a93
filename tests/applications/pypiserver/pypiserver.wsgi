# pypiserver's WSGI application over one package directory. Uploads need a user from
# the htpasswd file (pypiserver checks the Authorization header itself, so the alias
# passes it with pass-authorization=On); downloads are anonymous. Unknown projects get
# 404 instead of a redirect to the public index.
import pypiserver

application = pypiserver.app(
    roots=["@@PACKAGES@@"],
    password_file="@@HTPASSWD@@",
    authenticate=["update"],
    disable_fallback=True,
)
