-- wrk script for the soak mix (bench/soak.py): per 10 requests 5 hello, 2 x 1 MiB,
-- 2 x 64 KiB POST echo and 1 that raises in the application (-> 500). Every response
-- is checked against the case that answered it (X-Case; Apache's own 500 page has
-- none) and counted; done() prints the totals on one line for soak.py to read.
local plan = { "hello", "big", "hello", "echo", "hello", "raise", "hello", "big", "hello", "echo" }
local echo_body = string.rep("p", 65536)
local requests = {}
local index = 0
local threads = {}

ok_hello, ok_big, ok_echo, raised, unexpected, bad_body = 0, 0, 0, 0, 0, 0
first_bad = ""

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   for k, case in ipairs(plan) do
      if case == "echo" then
         requests[k] = wrk.format("POST", "/app/echo", { ["Content-Type"] = "application/octet-stream" }, echo_body)
      else
         requests[k] = wrk.format("GET", "/app/" .. case)
      end
   end
end

function request()
   index = index % #plan + 1
   return requests[index]
end

local function bad(what)
   if first_bad == "" then
      first_bad = what
   end
end

function response(status, headers, body)
   local case = headers["X-Case"]
   if case == nil then
      if status == 500 then
         raised = raised + 1
      else
         unexpected = unexpected + 1
         bad("status " .. status .. " without X-Case")
      end
   elseif status ~= 200 then
      unexpected = unexpected + 1
      bad("status " .. status .. " for " .. case)
   elseif case == "hello" then
      if body == "Hello world\n" then ok_hello = ok_hello + 1 else bad_body = bad_body + 1; bad("hello body") end
   elseif case == "big" then
      if #body == 1048576 then ok_big = ok_big + 1 else bad_body = bad_body + 1; bad("big body " .. #body) end
   elseif case == "echo" then
      if body == echo_body then ok_echo = ok_echo + 1 else bad_body = bad_body + 1; bad("echo body " .. #body) end
   else
      unexpected = unexpected + 1
      bad("unknown case " .. case)
   end
end

function done(summary, latency, requests)
   local t = { ok_hello = 0, ok_big = 0, ok_echo = 0, raised = 0, unexpected = 0, bad_body = 0 }
   local first = ""
   for _, thread in ipairs(threads) do
      for k, _ in pairs(t) do
         t[k] = t[k] + thread:get(k)
      end
      if first == "" then
         first = thread:get("first_bad")
      end
   end
   local e = summary.errors
   io.write(string.format(
      "SOAKMIX requests=%d ok_hello=%d ok_big=%d ok_echo=%d raised=%d unexpected=%d bad_body=%d " ..
      "connect=%d read=%d write=%d timeout=%d first_bad=%q\n",
      summary.requests, t.ok_hello, t.ok_big, t.ok_echo, t.raised, t.unexpected, t.bad_body,
      e.connect, e.read, e.write, e.timeout, first))
end
