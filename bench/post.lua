-- wrk script for the POST echo case: a 64 KiB body on every request.
wrk.method = "POST"
wrk.body = string.rep("p", 65536)
wrk.headers["Content-Type"] = "application/octet-stream"
