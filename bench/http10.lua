-- wrk script: POST a job of 10 `http` GETs to a fast local upstream (the everyday "aggregate ten
-- backend calls" case). The upstream's base URL comes from the environment: UPSTREAM=http://127.0.0.1:PORT/healthz
local url = os.getenv("UPSTREAM") or "http://127.0.0.1:18201/healthz"
local tasks = {}
for i = 0, 9 do tasks[#tasks + 1] = string.format('{"kind":"http","url":"%s?n=%d"}', url, i) end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"tasks":[' .. table.concat(tasks, ",") .. ']}'
