-- POST pre-signed requests read from BENCH_REQUESTS: one "header-value<TAB>body" a line.
-- Thread t of n sends lines t, t+n, t+2n, ... in order, then starts again (counted as replays).
-- BENCH_PATH: the path; BENCH_HEADER: the header that carries the first column.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local lines = {}
for line in io.lines(os.getenv("BENCH_REQUESTS")) do
  local tab = line:find("\t", 1, true)
  if tab then lines[#lines + 1] = { line:sub(1, tab - 1), line:sub(tab + 1) } end
end
local path = os.getenv("BENCH_PATH")
local header = os.getenv("BENCH_HEADER")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local i = nil
function request()
  if i == nil then i = tid end
  local item = lines[((i - 1) % #lines) + 1]
  i = i + nthreads
  return wrk.format("POST", path, {
    [header] = item[1],
    ["Content-Type"] = "application/json",
  }, item[2])
end
