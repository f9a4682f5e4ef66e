"""The Lua scripts of the Redis backend: each operation is one script call, so it is atomic across replicas and
costs one round trip. Numbers travel as strings (a Lua number returned to Redis is truncated to an integer)."""

from .base import PERIOD_KEPT_S

# KEYS: the counters. ARGV: now, then per counter: amount, limit, kind (w|p|g|n), reset_at (a tally's bucket length).
# Returns {1, bucket, 0, then per counter: its total with this amount in, its oldest counted second (0 but for
# windows)} when every counter had room (and all were added to), else {0, seconds until room, the 1-based index
# of the counter that waits longest}.
RESERVE = """
local now = tonumber(ARGV[1])
local second = math.floor(now)
local horizon = second - 60
local wait, refused = -1, 0
local totals, oldest = {}, {}
for i, key in ipairs(KEYS) do
  local base = 2 + (i - 1) * 4
  local amount, limit, kind = tonumber(ARGV[base]), tonumber(ARGV[base + 1]), ARGV[base + 2]
  if kind == 'n' then
    totals[i], oldest[i] = amount, 0  -- a tally: counted, never refused
  elseif kind == 'w' then
    local h = redis.call('HGETALL', key)
    local total, live = 0, {}
    for j = 1, #h, 2 do
      local s, v = tonumber(h[j]), tonumber(h[j + 1])
      if s <= horizon then redis.call('HDEL', key, h[j]) else total = total + v; live[#live + 1] = {s, v} end
    end
    local first = second
    for _, e in ipairs(live) do if e[1] < first then first = e[1] end end
    totals[i], oldest[i] = total + amount, first
    if total > 0 and total + amount > limit then
      table.sort(live, function(a, b) return a[1] < b[1] end)
      local need, freed, w = total + amount - limit, 0, 60
      for _, e in ipairs(live) do
        freed = freed + e[2]
        if freed >= need then w = e[1] + 60 - now; break end
      end
      if w > wait then wait = w; refused = i end
    end
  else
    local level = tonumber(redis.call('GET', key) or '0')
    totals[i], oldest[i] = level + amount, 0
    if level + amount > limit then
      local w = 1
      if kind == 'p' then w = math.max(0, tonumber(ARGV[base + 3]) - now) end
      if w > wait then wait = w; refused = i end
    end
  end
end
if wait >= 0 then return {0, tostring(wait), refused} end
for i, key in ipairs(KEYS) do
  local base = 2 + (i - 1) * 4
  local amount, kind = ARGV[base], ARGV[base + 2]
  if kind == 'n' then
    local b = tonumber(ARGV[base + 3])  -- a tally's bucket length, in seconds
    redis.call('HINCRBYFLOAT', key, math.floor(second / b), amount)
    redis.call('EXPIRE', key, math.ceil(b * 61))
  elseif kind == 'w' then
    redis.call('HINCRBYFLOAT', key, second, amount)
    redis.call('EXPIRE', key, 120)
  else
    redis.call('INCRBYFLOAT', key, amount)
    if kind == 'p' then
      local reset = tonumber(ARGV[base + 3])
      if reset > 0 then redis.call('EXPIREAT', key, math.floor(reset) + PERIOD_KEPT_S) end  -- 0: a total, kept
    else
      redis.call('EXPIRE', key, 3600)
    end
  end
end
local out = {1, tostring(second), 0}
for i = 1, #KEYS do out[#out + 1] = tostring(totals[i]); out[#out + 1] = tostring(oldest[i]) end
return out
"""
RESERVE = RESERVE.replace("PERIOD_KEPT_S", str(PERIOD_KEPT_S))

# KEYS: the counters. ARGV: the reservation's bucket (second), then per counter: delta, kind.
# A window's delta applies only while its bucket is still in the window; a gauge never goes below zero.
SETTLE = """
local second = ARGV[1]
for i, key in ipairs(KEYS) do
  local delta, kind = ARGV[2 * i], ARGV[2 * i + 1]
  if kind == 'w' then
    if redis.call('HEXISTS', key, second) == 1 then redis.call('HINCRBYFLOAT', key, second, delta) end
  else
    local level = tonumber(redis.call('INCRBYFLOAT', key, delta))
    if kind == 'g' and level < 0 then redis.call('SET', key, '0', 'KEEPTTL') end
  end
end
return 1
"""

# KEYS[1]: this flush's idempotency token, then the PERIOD counters. ARGV: the token's id, then the amounts.
# A flush re-sent after a lost answer finds its token and adds nothing: spend is never counted twice.
FLUSH = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', 86400) then return 0 end
for i = 2, #KEYS do redis.call('INCRBYFLOAT', KEYS[i], ARGV[i]) end
return 1
"""

# KEYS[1]: the epoch key, then per PERIOD counter to seed: the counter and its seed's record (SEEDED). ARGV: the
# epoch's final value, then per counter: its amount and its expiry (epoch seconds, 0: none). A counter that exists
# already counted requests itself (a Redis that kept data from before epochs existed, or a request that came first)
# and is left as it is. The epoch is set last: until then every replica serves on local counters (RedisState.check).
SEED = """
for i = 1, (#KEYS - 1) / 2 do
  local counter, seeded = KEYS[2 * i], KEYS[2 * i + 1]
  if redis.call('EXISTS', counter) == 0 then
    redis.call('INCRBYFLOAT', counter, ARGV[2 * i])
    redis.call('SET', seeded, ARGV[2 * i])
    local expiry = tonumber(ARGV[2 * i + 1])
    if expiry > 0 then
      redis.call('EXPIREAT', counter, math.floor(expiry))
      redis.call('EXPIREAT', seeded, math.floor(expiry))
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

# One budget counter added while the gateway runs (governance/seeding.py), seeded by every replica that learns of
# it, each with the ledger's spend before the same moment (its birth): the largest figure wins, added once.
# KEYS: the counter, its seed's record (what seeds added to it so far: a larger figure adds only the difference).
# ARGV: the amount, its expiry (epoch seconds, 0: none). Requests may have made the counter already (their spend is
# not in the figure: they began after the birth); its expiry is theirs then.
SEED_ONE = """
local amount = tonumber(ARGV[1])
local before = tonumber(redis.call('GET', KEYS[2]) or '0')
if amount <= before then return 0 end
local existed = redis.call('EXISTS', KEYS[1])
redis.call('INCRBYFLOAT', KEYS[1], amount - before)
redis.call('SET', KEYS[2], ARGV[1])
local expiry = tonumber(ARGV[2])
if expiry > 0 then
  if existed == 0 then redis.call('EXPIREAT', KEYS[1], math.floor(expiry)) end
  redis.call('EXPIREAT', KEYS[2], math.floor(expiry))
end
return 1
"""

# The routing snapshot, read off the request path. KEYS: window and tally counters, then the breakers' hash.
# ARGV: now, then per counter: bucket length in seconds, buckets in its window (a window: 1, 60).
# Returns per counter its total and the start of its oldest counted bucket (0 when empty), then the breakers'
# hash as field, value pairs. Buckets that left their window are deleted as they are seen.
SNAPSHOT = """
local second = math.floor(tonumber(ARGV[1]))
local out = {}
for i = 1, #KEYS - 1 do
  local b, n = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local horizon = math.floor(second / b) - n
  local h = redis.call('HGETALL', KEYS[i])
  local total, first = 0, nil
  for j = 1, #h, 2 do
    local f = tonumber(h[j])
    if f <= horizon then
      redis.call('HDEL', KEYS[i], h[j])
    else
      total = total + tonumber(h[j + 1])
      if first == nil or f < first then first = f end
    end
  end
  out[#out + 1] = tostring(total)
  out[#out + 1] = tostring(first and first * b or 0)
end
local breakers = redis.call('HGETALL', KEYS[#KEYS])
for j = 1, #breakers do out[#out + 1] = breakers[j] end
return out
"""
