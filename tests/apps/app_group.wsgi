# Reports the application group a request runs in: as the environ and the
# mod_wsgi module tell it now, as the module told it when this script was
# loaded, and as it was when the process's import scripts ran
# (app_group_import.py), with the process group and the pid.
import json
import os

import mod_wsgi

at_load = mod_wsgi.application_group


def application(environ, start_response):
    body = json.dumps({
        'environ': environ.get('mod_wsgi.application_group'),
        'module': mod_wsgi.application_group,
        'at_load': at_load,
        'at_start': os.environ.get('APP_GROUP_AT_START'),
        'process_group': mod_wsgi.process_group,
        'pid': os.getpid(),
    }).encode('utf-8')
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
