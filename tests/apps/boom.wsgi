# Raises before start_response.
def application(environ, start_response):
    raise ValueError('boom')
