# The Flask hello case (run only when bench.py is given --flask-venv).
from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello world\n"


application = app
