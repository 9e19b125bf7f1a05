"""The Lua scripts RedisStore runs: each takes a key and its budget in one round trip."""

from __future__ import annotations

# KEYS: the idempotency key, the day's TTS counter, the suppression list, the phone's slots, the
# list's expiries. ARGV: the claim's record, its TTL, the characters (0: none asked), the limit,
# the counter's TTL, the event id, the phone ('': no protections), now, the phone's limit (0:
# none), its window, how long slots are kept, the slot's margin, the slot's member.
# The order of CONTRACT.md §4: suppressed, phone_limit, duplicate; but a delivery of the event
# that holds the key finds it first (its call was made: its outcome is replayed).
CLAIM = """
local held = redis.call('GET', KEYS[1])
if held and cjson.decode(held)['e'] == ARGV[6] then return {'held', held} end
local phone, now, calls = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
if phone ~= '' then
  local entry = redis.call('HGET', KEYS[3], phone)
  if entry then
    local ends = cjson.decode(entry)['until']
    if ends == cjson.null or tonumber(ends) > now then return {'suppressed', entry} end
    redis.call('HDEL', KEYS[3], phone)
    redis.call('ZREM', KEYS[5], phone)
  end
  if calls > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[11]))
    local taken = redis.call('ZCOUNT', KEYS[4], now - tonumber(ARGV[10]), '+inf')
    if taken >= calls then return {'phone_limit', tostring(taken)} end
  end
end
if held then return {'held', held} end
local used = -1
local chars = tonumber(ARGV[3])
if chars > 0 then
  used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used + chars > tonumber(ARGV[4]) then return {'over', tostring(used)} end
  used = redis.call('INCRBY', KEYS[2], chars)
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
if phone ~= '' and calls > 0 then
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[12]), ARGV[13])
  redis.call('EXPIRE', KEYS[4], math.ceil(tonumber(ARGV[11]) + tonumber(ARGV[12])) + 1)
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return {'new', tostring(used)}
"""

# KEYS: the suppression list, the phone's slots. ARGV: the phone, now, its limit, its window.
PROTECTIONS = """
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if entry then
  local ends = cjson.decode(entry)['until']
  if ends == cjson.null or tonumber(ends) > tonumber(ARGV[2]) then return 'suppressed' end
end
local calls = tonumber(ARGV[3])
if calls > 0 then
  local taken = redis.call('ZCOUNT', KEYS[2], tonumber(ARGV[2]) - tonumber(ARGV[4]), '+inf')
  if taken >= calls then return 'phone_limit' end
end
return ''
"""

# KEYS: the suppression list, its expiries. ARGV: the phone, its entry, its until ('': none).
SUPPRESS = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == '' then redis.call('ZREM', KEYS[2], ARGV[1])
else redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1]) end
return 1
"""

# KEYS: the suppression list, its expiries. ARGV: the phone.
UNSUPPRESS = """
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])
"""

# KEYS: the suppression list, its expiries. ARGV: now. Drops the entries whose until passed;
# the list's size.
PRUNE = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, phone in ipairs(gone) do redis.call('HDEL', KEYS[1], phone) end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1]) end
return redis.call('HLEN', KEYS[1])
"""

# KEYS: the day's TTS counter. ARGV: the characters, the limit, the counter's TTL.
RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local chars = tonumber(ARGV[1])
if used + chars > tonumber(ARGV[2]) then return {0, used} end
used = redis.call('INCRBY', KEYS[1], chars)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, used}
"""

# KEYS: the day's TTS counter. ARGV: the characters to give back.
REFUND = """
local used = redis.call('GET', KEYS[1])
if not used then return 0 end
redis.call('SET', KEYS[1], math.max(0, tonumber(used) - tonumber(ARGV[1])), 'KEEPTTL')
return 1
"""

# KEYS: the idempotency key, the phone's slots. ARGV: our claim's exact record (a key another
# took is left alone), its slot's member ('': none).
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] ~= '' then redis.call('ZREM', KEYS[2], ARGV[2]) end
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: the idempotency key. ARGV: our claim's exact record, its replacement (same TTL).
SWAP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
"""

# KEYS: the replicas' shared pace. ARGV: µs between calls. Returns µs to wait. Redis's clock, so
# that replicas' clocks do not matter; reservations in turn (a generic cell rate algorithm).
PACE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local at = tonumber(redis.call('GET', KEYS[1]) or '0')
if at < now then at = now end
local next = at + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.ceil((next - now) / 1000) + 1000)
return at - now
"""
