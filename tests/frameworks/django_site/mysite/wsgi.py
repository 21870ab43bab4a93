"""The WSGI script Apache loads for the site (WSGIScriptAlias points here)."""
import os

os.environ["DJANGO_SETTINGS_MODULE"] = "mysite.settings"

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
