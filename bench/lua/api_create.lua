-- POST /api/v1/payment-requests with a unique reference and Idempotency-Key per request.
-- BENCH_BODY: a JSON file with __REF__ placeholders; BENCH_AUTH: "Bearer <key>"; BENCH_RUN: run id.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local f = assert(io.open(os.getenv("BENCH_BODY")))
local template = f:read("*a")
f:close()
local auth = os.getenv("BENCH_AUTH")
local run = os.getenv("BENCH_RUN") or "run"

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local counter = 0
function request()
  counter = counter + 1
  local ref = run .. "-" .. tid .. "-" .. counter
  local body = template:gsub("__REF__", ref)
  return wrk.format("POST", "/api/v1/payment-requests", {
    ["Authorization"] = auth,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = ref,
  }, body)
end
