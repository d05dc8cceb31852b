-- GET a random path from the file named by BENCH_PATHS (one path a line).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do
  if #line > 0 then paths[#paths + 1] = line end
end

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
end

local cookie = os.getenv("BENCH_COOKIE")
if cookie and #cookie > 0 then wrk.headers["Cookie"] = cookie end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
