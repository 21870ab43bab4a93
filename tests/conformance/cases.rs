//! The conformance catalogue: every case is a named list of requests sent, in order, to
//! both servers. The apps live in `tests/conformance/apps/` and are mounted as:
//!
//! | URL prefix  | target                         |
//! |-------------|--------------------------------|
//! | `/env`      | apps/env.wsgi                  |
//! | `/input`    | apps/input.wsgi                |
//! | `/out`      | apps/out.wsgi                  |
//! | `/err`      | apps/err.wsgi                  |
//! | `/noapp`    | apps/noapp.wsgi (no callable)  |
//! | `/broken`   | apps/broken.wsgi (load fails)  |
//! | `/missing`  | a script that does not exist   |
//! | `/scripts/` | the directory scripts/ (holds env.wsgi) |
//! | `/authenv`  | apps/env.wsgi with pass-authorization=On |
//! | `/callable` | apps/noapp.wsgi with callable-object=not_the_application |
//! | `^/match/([a-z]+)` | WSGIScriptAliasMatch to apps/$1.wsgi |
//! | `/limited`  | apps/input.wsgi with LimitRequestBody 100 |
//! | `/handler/` | directory with `AddHandler wsgi-script .wsgi` and ExecCGI |
//! | `/handler-noexec/` | the same without ExecCGI |
//! | `/` on Host `rootmount.test` | apps/env.wsgi (a second virtual host) |

/// How the two responses are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// Status, headers, completeness and body bytes.
    Exact,
    /// As `Exact`, but a 200 body is env.wsgi's JSON report, compared key by key.
    Environ,
}

#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Add `Content-Length` for the body (off for chunked bodies).
    pub auto_length: bool,
    /// Close the sending side after the request, before reading the response.
    pub half_close: bool,
    /// Requests sent after this one on the same connection (keep-alive); the last of
    /// them carries `Connection: close`.
    pub pipeline: Vec<Req>,
}

impl Req {
    pub fn new(method: &str, target: &str) -> Req {
        Req {
            method: method.into(),
            target: target.into(),
            version: "HTTP/1.1".into(),
            headers: Vec::new(),
            body: Vec::new(),
            auto_length: method == "POST" || method == "PUT",
            half_close: false,
            pipeline: Vec::new(),
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Req {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Req {
        self.body = b.into();
        self.auto_length = true;
        self
    }
    pub fn version(mut self, v: &str) -> Req {
        self.version = v.into();
        self
    }
    /// Sends the pieces as a chunked request body.
    pub fn chunked(mut self, pieces: &[&[u8]]) -> Req {
        let mut b = Vec::new();
        for p in pieces {
            b.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
            b.extend_from_slice(p);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"0\r\n\r\n");
        self.body = b;
        self.auto_length = false;
        self.headers.push(("Transfer-Encoding".into(), "chunked".into()));
        self
    }
    /// Announces `declared` bytes but sends only `body`, then closes the sending side.
    pub fn short_body(mut self, declared: usize, body: &[u8]) -> Req {
        self.headers.push(("Content-Length".into(), declared.to_string()));
        self.body = body.to_vec();
        self.auto_length = false;
        self.half_close = true;
        self
    }
    /// Whether the application this request reaches returns a list or tuple body
    /// (see [`LIST_BODY_PATHS`]).
    pub fn returns_list(&self) -> bool {
        let path = self.target.split('?').next().unwrap_or("");
        LIST_BODY_PATHS.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == *p,
        })
    }
    /// This request followed by `more` on one connection.
    pub fn then(mut self, more: Vec<Req>) -> Req {
        self.pipeline = more;
        self
    }
    pub fn describe(&self) -> String {
        let mut s = format!("{} {} {}", self.method, self.target, self.version);
        for (k, v) in &self.headers {
            s.push_str(&format!(" [{k}: {v}]"));
        }
        if !self.body.is_empty() {
            s.push_str(&format!(" body={}B", self.body.len()));
        }
        for r in &self.pipeline {
            s.push_str(&format!(", then on the same connection: {}", r.describe()));
        }
        s
    }
}

/// Request paths whose application returns its body as a list or tuple (a trailing `*`
/// matches any rest). The framing of these responses differs deliberately.
pub const LIST_BODY_PATHS: &[&str] = &[
    "/input/*",
    "/limited/read",
    "/callable/*",
    "/out/list-body",
    "/out/tuple-body",
    "/out/empty-items",
    "/out/large-single",
    "/out/teapot",
    "/out/status-unknown-code",
    "/out/status-lowercase-reason",
    "/out/status-latin1-reason",
    "/out/repeated-headers",
    "/out/no-content-type",
    "/out/latin1-header",
    "/out/empty-header-value",
    "/out/header-whitespace",
    "/out/content-type-twice",
    "/out/location-redirect",
    "/out/method-header",
    "/out/start-response-twice",
    "/out/exc-info-before-output",
    "/out/closed",
    "/out/str-subclasses",
    "/out/close-raises-list",
];

pub struct Case {
    pub name: &'static str,
    pub what: &'static str,
    pub cmp: Cmp,
    pub reqs: Vec<Req>,
}

fn get(target: &str) -> Req {
    Req::new("GET", target)
}

fn post(target: &str, body: &[u8]) -> Req {
    Req::new("POST", target).header("Content-Type", "application/octet-stream").body(body)
}

fn case(name: &'static str, what: &'static str, cmp: Cmp, reqs: Vec<Req>) -> Case {
    Case { name, what, cmp, reqs }
}

/// A deterministic body of `n` bytes with a newline every 37 bytes.
pub fn lines_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| if i % 37 == 36 { b'\n' } else { b'a' + (i % 26) as u8 }).collect()
}

/// A deterministic binary body of `n` bytes.
pub fn binary_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + i / 251) % 256) as u8).collect()
}

const LINES: &[u8] = b"first line\nsecond line is longer\n\nfourth\nno newline at the end";

pub fn catalogue() -> Vec<Case> {
    use Cmp::*;
    let big = binary_body(5 * 1024 * 1024);
    vec![
        // ----- environ
        case("env-basic", "plain GET, the full environ", Environ, vec![get("/env")]),
        case("env-query", "GET with path info and a query string", Environ,
             vec![get("/env/a/b?x=1&y=two%20words&z")]),
        case("env-trailing-slash", "mount point followed by a slash", Environ, vec![get("/env/")]),
        case("env-percent-path", "percent-encoded path info", Environ,
             vec![get("/env/a%20b/%7Euser/c%2Bd?q=%2F")]),
        case("env-utf8-path", "percent-encoded UTF-8 in the path", Environ,
             vec![get("/env/caf%C3%A9/%E2%98%83?k=%C3%A9")]),
        case("env-latin1-path", "percent-encoded bytes that are not UTF-8 in the path", Environ,
             vec![get("/env/caf%E9/%FF%FE?k=%E9")]),
        case("env-latin1-match", "bytes that are not UTF-8 under WSGIScriptAliasMatch", Environ,
             vec![get("/match/env/caf%E9/x")]),
        case("env-raw-utf8-path", "raw UTF-8 bytes in the request line", Environ,
             vec![get("/env/caf\u{e9}/\u{2603}")]),
        case("env-raw-utf8-query", "raw UTF-8 bytes in the query string", Environ,
             vec![get("/env/q?name=caf\u{e9}&x=\u{2603}")]),
        case("env-utf8-header-value", "raw UTF-8 bytes in a request header value", Environ,
             vec![get("/env/hv").header("X-Utf8", "caf\u{e9} \u{2603}")]),
        case("env-double-slash", "runs of slashes in the path", Environ,
             vec![get("/env//a//b/")]),
        case("env-dot-segments", "dot segments are resolved by Apache", Environ,
             vec![get("/env/a/./b/../c")]),
        case("env-root-mount", "WSGIScriptAlias / in a virtual host", Environ,
             vec![get("/elsewhere/x?y=1").header("Host", "rootmount.test")]),
        case("env-root-mount-bare", "WSGIScriptAlias / in a virtual host, request for /", Environ,
             vec![get("/").header("Host", "rootmount.test")]),
        case("env-vhost-alias-first", "a virtual host's / comes before the main server's /env", Environ,
             vec![get("/env/v").header("Host", "rootmount.test")]),
        case("env-addhandler", "AddHandler wsgi-script with ExecCGI", Environ,
             vec![get("/handler/env.wsgi/x/y?z=1")]),
        case("env-addhandler-no-execcgi", "AddHandler wsgi-script without ExecCGI", Exact,
             vec![get("/handler-noexec/env.wsgi")]),
        case("env-script-dir", "script-directory mount: /scripts/NAME/rest", Environ,
             vec![get("/scripts/env.wsgi/more/path?a=b")]),
        case("env-script-dir-bare", "script-directory mount, the script itself", Environ,
             vec![get("/scripts/env.wsgi")]),
        case("env-script-dir-index", "script-directory mount, the directory", Exact,
             vec![get("/scripts/")]),
        case("env-script-dir-missing", "script-directory mount, no such script", Exact,
             vec![get("/scripts/nope.wsgi/x")]),
        case("env-pass-authorization", "pass-authorization=On passes Authorization", Environ,
             vec![get("/authenv/x").header("Authorization", "Basic dXNlcjpwYXNz")]),
        case("env-callable-object", "callable-object= names another callable", Exact,
             vec![get("/callable/x")]),
        case("env-alias-match", "WSGIScriptAliasMatch with $1 in the target", Environ,
             vec![get("/match/env/extra/path?q=1")]),
        case("env-alias-match-missing", "WSGIScriptAliasMatch to a missing script", Exact,
             vec![get("/match/nope/x")]),
        case("env-http-headers", "request headers become HTTP_* keys", Environ,
             vec![get("/env/h")
                 .header("X-Custom-Thing", "some value")
                 .header("Accept", "text/html, */*;q=0.1")
                 .header("Cookie", "a=1; b=2")
                 .header("X-Repeated", "one")
                 .header("X-Repeated", "two")
                 .header("User-Agent", "conformance/1.0")]),
        case("env-underscore-header", "headers with an underscore are dropped", Environ,
             vec![get("/env/u").header("X_Under_Score", "dropped").header("X-Dash-Only", "kept")
                 .header("X.Dot", "odd")]),
        case("env-authorization", "Authorization is hidden by default", Environ,
             vec![get("/env/auth").header("Authorization", "Basic dXNlcjpwYXNz")]),
        case("env-post-content", "POST: CONTENT_TYPE and CONTENT_LENGTH", Environ,
             vec![Req::new("POST", "/env/p").header("Content-Type", "text/x-test; charset=utf-8")
                 .body(&b"abc"[..])]),
        case("env-post-empty", "POST with Content-Length: 0", Environ,
             vec![Req::new("POST", "/env/p")]),
        case("env-put-no-type", "PUT without Content-Type", Environ,
             vec![Req::new("PUT", "/env/p").body(&b"xyz"[..])]),
        case("env-http10", "HTTP/1.0 request", Environ, vec![get("/env/old").version("HTTP/1.0")]),
        case("env-host-header", "a Host header naming another name and port", Environ,
             vec![get("/env/host").header("Host", "example.org:8080")]),
        case("env-options", "OPTIONS request reaches the app", Environ, vec![Req::new("OPTIONS", "/env/o")]),
        case("env-custom-method", "a method Apache does not know", Environ,
             vec![Req::new("FROBNICATE", "/env/f")]),
        // ----- wsgi.input
        case("input-read", "read() then read() again", Exact, vec![post("/input/read", LINES)]),
        case("input-read-n", "read(7) until empty", Exact, vec![post("/input/read-n?n=7", LINES)]),
        case("input-read-n-large", "read(1000) over 100 kB", Exact,
             vec![post("/input/read-n?n=1000", &binary_body(100_000))]),
        case("input-read-minus-1", "read(-1)", Exact, vec![post("/input/read-minus-1", LINES)]),
        case("input-read-none", "read(None)", Exact, vec![post("/input/read-none", LINES)]),
        case("input-read-zero", "read(0)", Exact, vec![post("/input/read-zero", LINES)]),
        case("input-readline", "readline() until empty", Exact, vec![post("/input/readline", LINES)]),
        case("input-readline-n", "readline(5) until empty", Exact,
             vec![post("/input/readline-n?n=5", LINES)]),
        case("input-readline-long", "readline() over long lines", Exact,
             vec![post("/input/readline", &lines_body(200_000))]),
        case("input-readlines", "readlines()", Exact, vec![post("/input/readlines", LINES)]),
        case("input-readlines-hint", "readlines(15) until empty", Exact,
             vec![post("/input/readlines-hint?n=15", LINES)]),
        case("input-iter", "for line in wsgi.input", Exact, vec![post("/input/iter", LINES)]),
        case("input-mixed", "readline, read(5), readline(3), readlines, read", Exact,
             vec![post("/input/mixed", LINES)]),
        case("input-empty", "read() of an empty POST body", Exact, vec![post("/input/read", b"")]),
        case("input-get-no-body", "read() on a GET", Exact, vec![get("/input/read")]),
        case("input-chunked", "chunked request body, read()", Exact,
             vec![Req::new("POST", "/input/read").chunked(&[b"first line\nsec", b"ond line\n", b"tail"])]),
        case("input-chunked-readline", "chunked request body, readline()", Exact,
             vec![Req::new("POST", "/input/readline").chunked(&[b"ab\ncd", b"ef\n", b"\ngh"])]),
        case("input-chunked-large", "chunked request body of 1 MiB, echoed", Exact,
             vec![{
                 let body = binary_body(1024 * 1024);
                 let pieces: Vec<&[u8]> = body.chunks(70_000).collect();
                 Req::new("POST", "/input/echo").chunked(&pieces)
             }]),
        case("input-expect-100", "Expect: 100-continue, body read", Exact,
             vec![post("/input/read", LINES).header("Expect", "100-continue")]),
        case("input-expect-100-unread", "Expect: 100-continue, body not read", Exact,
             vec![Req::new("POST", "/out/list-body").header("Expect", "100-continue").body(&b"unread"[..])]),
        case("input-short-body", "client announces 100 bytes, sends 10 and stops", Exact,
             vec![Req::new("POST", "/input/read").short_body(100, b"only ten b")]),
        case("input-over-limit", "body over LimitRequestBody", Exact,
             vec![post("/limited/over", &lines_body(1000))]),
        case("input-under-limit", "body under LimitRequestBody", Exact,
             vec![post("/limited/read", &lines_body(90))]),
        case("input-large-echo", "5 MiB POST echoed back", Exact, vec![post("/input/echo", &big)]),
        // ----- response shapes
        case("out-list", "list body", Exact, vec![get("/out/list-body")]),
        case("out-tuple", "tuple body", Exact, vec![get("/out/tuple-body")]),
        case("out-generator", "streamed generator", Exact, vec![get("/out/generator")]),
        case("out-generator-http10", "streamed generator to an HTTP/1.0 client", Exact,
             vec![get("/out/generator").version("HTTP/1.0")]),
        case("out-generator-cl", "generator with the app's Content-Length", Exact,
             vec![get("/out/generator-cl")]),
        case("out-write", "write() callable only", Exact, vec![get("/out/write-only")]),
        case("out-write-then-iter", "write() then a list", Exact, vec![get("/out/write-then-iter")]),
        case("out-empty-list", "empty list body", Exact, vec![get("/out/empty-list")]),
        case("out-empty-items", "empty bytes items among others", Exact, vec![get("/out/empty-items")]),
        case("out-only-empty-items", "generator of empty bytes only", Exact,
             vec![get("/out/only-empty-items")]),
        case("out-large-stream", "5 MiB streamed in 64 KiB items", Exact, vec![get("/out/large")]),
        case("out-large-single", "5 MiB in one item", Exact, vec![get("/out/large-single")]),
        case("out-file-wrapper", "file_wrapper on a real file", Exact, vec![get("/out/file-real")]),
        case("out-file-wrapper-cl", "file_wrapper on a real file with Content-Length 1000", Exact,
             vec![get("/out/file-real-cl")]),
        case("out-file-wrapper-offset", "file_wrapper on a real file positioned at 1000", Exact,
             vec![get("/out/file-real-offset")]),
        case("out-write-during-iteration", "write() called between yielded items", Exact,
             vec![get("/out/write-during-iteration")]),
        case("out-deferred-start-response", "start_response called inside the iterator", Exact,
             vec![get("/out/deferred-start-response")]),
        case("out-deferred-start-empty-first", "start_response inside the iterator, empty first item", Exact,
             vec![get("/out/deferred-start-response-empty-first")]),
        case("err-deferred-never-started", "iterator that never calls start_response", Exact,
             vec![get("/err/deferred-never-started")]),
        case("out-file-wrapper-bytesio", "file_wrapper on BytesIO", Exact, vec![get("/out/file-bytesio")]),
        case("out-file-wrapper-bytesio-cl", "file_wrapper on BytesIO with Content-Length 5000", Exact,
             vec![get("/out/file-bytesio-cl")]),
        case("out-204", "204 with a body from the app", Exact, vec![get("/out/status-204")]),
        case("out-304", "304 with a body from the app", Exact, vec![get("/out/status-304")]),
        case("out-head-list", "HEAD of a list body", Exact, vec![Req::new("HEAD", "/out/list-body")]),
        case("out-head-generator", "HEAD of a generator", Exact, vec![Req::new("HEAD", "/out/generator")]),
        case("out-head-file", "HEAD of a file_wrapper", Exact, vec![Req::new("HEAD", "/out/file-real")]),
        case("out-head-method", "the method a HEAD request shows the app", Exact,
             vec![Req::new("HEAD", "/out/method-header")]),
        case("out-get-method", "the method a GET request shows the app", Exact,
             vec![get("/out/method-header")]),
        case("out-teapot", "custom status and headers", Exact, vec![get("/out/teapot")]),
        case("out-unknown-code", "status code Apache does not know", Exact,
             vec![get("/out/status-unknown-code")]),
        case("out-status-bare", "status \"200\" without a reason", Exact, vec![get("/out/status-bare")]),
        case("out-status-own-reason", "404 with the app's own reason phrase", Exact,
             vec![get("/out/status-lowercase-reason")]),
        case("out-repeated-headers", "Set-Cookie three times", Exact, vec![get("/out/repeated-headers")]),
        case("out-no-content-type", "no Content-Type from the app", Exact, vec![get("/out/no-content-type")]),
        case("out-latin1-header", "Latin-1 header value", Exact, vec![get("/out/latin1-header")]),
        case("out-empty-header-value", "empty header value", Exact, vec![get("/out/empty-header-value")]),
        case("out-header-whitespace", "header value with surrounding spaces", Exact,
             vec![get("/out/header-whitespace")]),
        case("out-status-latin1-reason", "Latin-1 reason phrase", Exact,
             vec![get("/out/status-latin1-reason")]),
        case("out-content-type-twice", "Content-Type given twice", Exact,
             vec![get("/out/content-type-twice")]),
        case("out-connection-header", "the app sets Connection: close", Exact,
             vec![get("/out/connection-header")]),
        case("out-str-subclasses", "str subclasses as status, header names and values", Exact,
             vec![get("/out/str-subclasses")]),
        case("out-bytes-subclass-items", "bytes subclasses as body items", Exact,
             vec![get("/out/bytes-subclass-items")]),
        case("out-many-small-items", "10000 small streamed items", Exact, vec![get("/out/many-small-items")]),
        case("out-close-raises-iterable", "close() raises after a streamed body", Exact,
             vec![get("/out/close-raises-iterable")]),
        case("out-close-raises-list", "close() of a list subclass raises", Exact,
             vec![get("/out/close-raises-list")]),
        case("out-redirect", "302 with a relative Location", Exact, vec![get("/out/location-redirect")]),
        case("out-cl-too-long", "Content-Length 100, 10 bytes sent", Exact, vec![get("/out/cl-too-long")]),
        case("out-cl-too-short", "Content-Length 5, 20 bytes returned", Exact, vec![get("/out/cl-too-short")]),
        case("out-cl-zero", "Content-Length 0 with a body", Exact, vec![get("/out/cl-zero")]),
        case("out-start-response-twice", "second start_response before output", Exact,
             vec![get("/out/start-response-twice")]),
        case("out-exc-info-before-output", "start_response with exc_info before output", Exact,
             vec![get("/out/exc-info-before-output")]),
        case("out-exc-info-after-output", "start_response with exc_info after output re-raises", Exact,
             vec![get("/out/exc-info-after-output")]),
        case("out-start-response-after-output", "start_response again after output, no exc_info", Exact,
             vec![get("/out/start-response-after-output")]),
        case("out-close-called", "close() after a normal response", Exact,
             vec![get("/out/closed?token=normal&now=1"), get("/out/close-called?token=normal"),
                  get("/out/closed?token=normal")]),
        case("out-close-on-error", "close() when iteration fails after output", Exact,
             vec![get("/out/close-on-error?token=late"), get("/out/closed?token=late")]),
        case("out-close-on-early-error", "close() when iteration fails before output", Exact,
             vec![get("/out/close-on-error-early?token=early"), get("/out/closed?token=early")]),
        // ----- several requests on one connection
        case("keepalive-generator-then-list", "a streamed response, then a list body", Exact,
             vec![get("/out/generator").then(vec![get("/out/list-body")])]),
        case("keepalive-unread-body", "the app leaves the request body unread", Exact,
             vec![post("/out/list-body", &lines_body(5000)).then(vec![get("/out/generator")])]),
        case("keepalive-partly-read-body", "the app reads one line of the body", Exact,
             vec![post("/input/one-line", &lines_body(5000)).then(vec![get("/out/generator")])]),
        case("keepalive-after-500", "an exception before output, then another request", Exact,
             vec![get("/err/raise-before-start").then(vec![get("/out/list-body")])]),
        case("keepalive-after-head", "HEAD of a generator, then a GET", Exact,
             vec![Req::new("HEAD", "/out/generator").then(vec![get("/out/list-body")])]),
        case("keepalive-after-cl-too-short", "a body cut to its Content-Length, then a GET", Exact,
             vec![get("/out/cl-too-short").then(vec![get("/out/list-body")])]),
        case("keepalive-after-204", "a 204 whose app yields a body, then a GET", Exact,
             vec![get("/out/status-204").then(vec![get("/out/list-body")])]),
        case("keepalive-file-wrapper", "file_wrapper responses back to back", Exact,
             vec![get("/out/file-real").then(vec![get("/out/file-bytesio"), get("/out/file-real-cl")])]),
        case("keepalive-chunked-request", "a chunked request body, then a GET", Exact,
             vec![Req::new("POST", "/input/read").chunked(&[b"abc\n", b"def"])
                 .then(vec![get("/out/list-body")])]),
        // ----- errors
        case("err-raise-before-start", "exception before start_response", Exact,
             vec![get("/err/raise-before-start")]),
        case("err-raise-after-start", "exception after start_response, before output", Exact,
             vec![get("/err/raise-after-start")]),
        case("err-raise-in-first-item", "exception producing the first item", Exact,
             vec![get("/err/raise-in-first-item")]),
        case("err-raise-after-output", "exception after output (chunked)", Exact,
             vec![get("/err/raise-after-output")]),
        case("err-raise-after-output-cl", "exception after output (Content-Length)", Exact,
             vec![get("/err/raise-after-output-cl")]),
        case("err-no-start-response", "body returned without start_response", Exact,
             vec![get("/err/no-start-response")]),
        case("err-no-start-response-empty", "empty body without start_response", Exact,
             vec![get("/err/no-start-response-empty")]),
        case("err-returns-none", "application returns None", Exact, vec![get("/err/returns-none")]),
        case("err-str-item", "str body item", Exact, vec![get("/err/str-item")]),
        case("err-str-item-after-output", "str body item after output", Exact,
             vec![get("/err/str-item-after-output")]),
        case("err-write-str", "write() of a str", Exact, vec![get("/err/write-str")]),
        case("err-bytearray-item", "bytearray body item", Exact, vec![get("/err/bytearray-item")]),
        case("err-str-body", "a str returned as the body", Exact, vec![get("/err/str-body")]),
        case("err-bytes-body", "bytes returned as the body (iterates to ints)", Exact,
             vec![get("/err/bytes-body")]),
        case("err-bad-content-length", "non-numeric Content-Length from the app", Exact,
             vec![get("/err/bad-content-length")]),
        case("err-transfer-encoding-header", "the app sets Transfer-Encoding: chunked", Exact,
             vec![get("/err/transfer-encoding-header")]),
        case("err-header-name-bytes", "bytes header name", Exact, vec![get("/err/header-name-bytes")]),
        case("err-header-value-int", "int header value", Exact, vec![get("/err/header-value-int")]),
        case("err-header-non-latin1", "header value outside Latin-1", Exact,
             vec![get("/err/header-value-non-latin1")]),
        case("err-header-crlf", "CR LF in a header value", Exact, vec![get("/err/header-value-crlf")]),
        case("err-header-lf", "LF in a header value", Exact, vec![get("/err/header-value-lf")]),
        case("err-header-name-space", "space in a header name", Exact, vec![get("/err/header-name-space")]),
        case("err-header-name-colon", "colon in a header name", Exact, vec![get("/err/header-name-colon")]),
        case("err-headers-tuple", "headers given as a tuple", Exact, vec![get("/err/headers-tuple")]),
        case("err-header-item-list", "header item given as a list", Exact, vec![get("/err/header-item-list")]),
        case("err-header-item-triple", "header item with three elements", Exact,
             vec![get("/err/header-item-triple")]),
        case("err-status-bytes", "status given as bytes", Exact, vec![get("/err/status-bytes")]),
        case("err-status-int", "status given as an int", Exact, vec![get("/err/status-int")]),
        case("err-status-two-digits", "status \"20 OK\"", Exact, vec![get("/err/status-two-digits")]),
        case("err-status-no-space", "status \"200OK\"", Exact, vec![get("/err/status-no-space")]),
        case("err-status-words", "status \"abc\"", Exact, vec![get("/err/status-words")]),
        case("err-status-control-char", "newline in the status", Exact, vec![get("/err/status-control-char")]),
        case("err-status-non-latin1", "status outside Latin-1", Exact, vec![get("/err/status-non-latin1")]),
        case("err-noapp", "script without an application callable", Exact, vec![get("/noapp")]),
        case("err-broken-script", "script raising while loaded", Exact, vec![get("/broken/x")]),
        case("err-missing-script", "alias to a script that does not exist", Exact, vec![get("/missing")]),
    ]
}
