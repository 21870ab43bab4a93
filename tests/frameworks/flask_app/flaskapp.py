"""A small Flask application exercising what real sites use: routing, query
strings, JSON, forms, file uploads, streaming, cookies, sessions and error
handlers."""
import hashlib
import sys

from flask import Flask, Response, abort, jsonify, request, session, stream_with_context

app = Flask(__name__)
app.config["SECRET_KEY"] = "test-secret-key-not-for-production"


class Teapot(Exception):
    pass


@app.errorhandler(Teapot)
def handle_teapot(e):
    return jsonify(error="teapot", detail=str(e)), 418


@app.errorhandler(404)
def handle_404(e):
    return jsonify(error="not found", path=request.path), 404


@app.route("/")
def index():
    return "Flask says hello\n"


@app.route("/hello/<name>")
def hello(name):
    return "Hello, %s!\n" % name


@app.route("/items/<int:item_id>")
def item(item_id):
    return jsonify(id=item_id, double=item_id * 2)


@app.route("/search")
def search():
    return jsonify(
        q=request.args.get("q"),
        n=request.args.get("n", type=int),
        tags=request.args.getlist("tag"),
        script_root=request.script_root,
        path=request.path,
    )


@app.route("/api/echo", methods=["POST"])
def api_echo():
    data = request.get_json()
    return jsonify(received=data, total=sum(data.get("numbers", [])), method=request.method), 201


@app.route("/form", methods=["POST"])
def form():
    return jsonify(fields={k: request.form.getlist(k) for k in request.form})


@app.route("/upload", methods=["POST"])
def upload():
    out = {"fields": dict(request.form), "files": []}
    for key in request.files:
        for f in request.files.getlist(key):
            data = f.read()
            out["files"].append({
                "field": key,
                "filename": f.filename,
                "content_type": f.content_type,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            })
    return jsonify(out)


@app.route("/stream")
def stream():
    n = request.args.get("n", 5, type=int)

    def generate():
        for i in range(n):
            yield "line %d of %d\n" % (i + 1, n)

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.route("/session/set")
def session_set():
    session["value"] = request.args["value"]
    session["count"] = session.get("count", 0) + 1
    return jsonify(stored=session["value"], count=session["count"])


@app.route("/session/get")
def session_get():
    return jsonify(value=session.get("value"), count=session.get("count", 0))


@app.route("/cookie/set")
def cookie_set():
    resp = jsonify(ok=True)
    resp.set_cookie("flavour", request.args.get("flavour", "oatmeal"), path="/")
    return resp


@app.route("/cookie/get")
def cookie_get():
    return jsonify(flavour=request.cookies.get("flavour"))


@app.route("/teapot")
def teapot():
    raise Teapot("short and stout")


@app.route("/forbidden")
def forbidden():
    abort(403)


@app.route("/crash")
def crash():
    raise RuntimeError("flask view crashed on purpose")


@app.route("/runtime")
def runtime():
    """Reports the interpreter settings the application runs under."""
    return jsonify(
        optimize=sys.flags.optimize,
        debug=__debug__,
        view_doc=runtime.__doc__,
        module_doc=sys.modules[__name__].__doc__,
        prefix=sys.prefix,
        flask_file=sys.modules["flask"].__file__,
    )
