# Bytecode cache probe (tests/pycache.rs). Loaded with WSGIImportScript, so everything
# it imports is compiled (or read from the cache) while the process starts: a set of
# standard-library modules and pycache_helper.py from @@LIB@@.
import argparse
import csv
import decimal
import email.mime.multipart
import email.parser
import http.client
import json
import logging.handlers
import os
import sys
import urllib.request
import xml.dom.minidom

sys.path.insert(0, '@@LIB@@')
import pycache_helper


def application(environ, start_response):
    data = {
        'pid': os.getpid(),
        'uid': os.getuid(),
        'optimize': sys.flags.optimize,
        'pycache_prefix': sys.pycache_prefix or '',
        'helper_cached': pycache_helper.__cached__ or '',
        'helper_value': pycache_helper.VALUE,
        'json_cached': json.__cached__ or '',
    }
    body = json.dumps(data).encode('utf-8')
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
