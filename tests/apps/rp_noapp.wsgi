# A script that loads fine but defines no WSGI callable.
def not_the_application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'never']
