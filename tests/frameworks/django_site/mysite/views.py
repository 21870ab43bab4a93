import os
import sys

from django.conf import settings
from django.http import HttpResponse, JsonResponse


def home(request):
    return HttpResponse("Django says hello\n", content_type="text/plain")


def runtime(request):
    """Reports the interpreter settings the site runs under."""
    return JsonResponse({
        "optimize": sys.flags.optimize,
        "debug": __debug__,
        "view_doc": runtime.__doc__,
        "settings_module": os.environ.get("DJANGO_SETTINGS_MODULE"),
        "settings_debug": settings.DEBUG,
        "prefix": sys.prefix,
        "script_name": request.META.get("SCRIPT_NAME"),
    })


def crash(request):
    raise RuntimeError("django view crashed on purpose")
