-- wrk script for benches/intake.sh: every request is a new payment,
-- `POST /v1/payments` with its own Idempotency-Key and end_to_end_id, so the
-- gateway stores each one (no idempotent replays).
--
-- Settings come from the environment (wrk passes no arguments to setup):
--   INTAKE_TOKEN    bearer token (payments:write)
--   INTAKE_ACCOUNT  debtor account id, e.g. sim-east-cny-1
--   INTAKE_RUN      a short tag unique to this run (keeps keys unique across
--                   the warm-up, the measured run and earlier runs)
-- Keys are "<run>-<thread>-<n>"; end_to_end_ids the same (at most 35 chars).
--
-- The body is built once per thread with a placeholder, then only the
-- counter changes per request: the per-request cost in wrk is a string
-- substitution, so wrk spends its CPU on HTTP, not on making bodies.

local token = os.getenv("INTAKE_TOKEN") or error("INTAKE_TOKEN is not set")
local account = os.getenv("INTAKE_ACCOUNT") or error("INTAKE_ACCOUNT is not set")
local run = os.getenv("INTAKE_RUN") or error("INTAKE_RUN is not set")

local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("thread_no", threads)
end

local template = '{"debtor_account_id":"' .. account .. '","amount":"AMOUNT","currency":"CNY",'
    .. '"creditor":{"name":"上海测试贸易有限公司","account":"6222020000001234",'
    .. '"bank_code":"102290000001","bank_name":"中国工商银行上海分行","type":"corporate"},'
    .. '"remittance":"货款 E2E","end_to_end_id":"E2E"}'

local n = 0
local prefix
local headers

function init(args)
    prefix = run .. "-" .. tostring(thread_no) .. "-"
    headers = {
        ["Authorization"] = "Bearer " .. token,
        ["Content-Type"] = "application/json",
    }
end

function request()
    n = n + 1
    local id = prefix .. n
    -- 1.00 to 999.99 CNY, varied so rows differ.
    local minor = 100 + (n * 7919) % 99900
    local amount = string.format("%d.%02d", math.floor(minor / 100), minor % 100)
    local body = template:gsub("AMOUNT", amount, 1):gsub("E2E", id)
    headers["Idempotency-Key"] = id
    return wrk.format("POST", nil, headers, body)
end

-- INTAKE_LIMIT=N (preloading for the dispatch phase): each thread stops
-- after N answers. Only then is a response() defined, since wrk calls it
-- for every answer when it exists, which would slow the measured runs.
local limit = tonumber(os.getenv("INTAKE_LIMIT") or "")
if limit then
    local answers = 0
    function response(status, headers, body)
        answers = answers + 1
        if answers >= limit then
            wrk.thread:stop()
        end
    end
end
