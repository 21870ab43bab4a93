# Conformance app: a script without the callable the server looks for.
def not_the_application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'wrong name']
