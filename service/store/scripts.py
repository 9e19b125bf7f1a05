"""The Lua scripts RedisStore runs: each takes a key and its budget in one round trip."""

from __future__ import annotations

# KEYS: the idempotency key, the day's TTS counter.
# ARGV: the claim's record, its TTL, the characters (0: none asked), the limit, the counter's TTL.
CLAIM = """
local held = redis.call('GET', KEYS[1])
if held then return {'held', held} end
local used = -1
local chars = tonumber(ARGV[3])
if chars > 0 then
  used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used + chars > tonumber(ARGV[4]) then return {'over', tostring(used)} end
  used = redis.call('INCRBY', KEYS[2], chars)
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return {'new', tostring(used)}
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

# KEYS: the idempotency key. ARGV: our claim's exact record (a key another took is left alone).
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
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
