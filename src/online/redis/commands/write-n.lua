--[[
  Writes one view's values of several entities, each only when newer than the stored one, and
  keeps each record's expiry. Atomic: no other command runs between the compare and the write.

  KEYS[i]     the record of entity i: a hash with one field per feature view
  ARGV[1]     the view: the hash field
  ARGV[2]     the view's TTL in ms; 0 = no limit
  ARGV[3]     the values, in KEYS order, each a big-endian uint32 byte length then the value: a
              20-byte header (event ms and created ms as big-endian doubles, the view's schema
              fingerprint), then the MessagePack feature values. One argument rather than one per
              key halves the client's work per row.

  Newer: a greater event time, or an equal one with a greater created time. A stored value
  of another schema fingerprint (written before a breaking change) is always replaced.
  Expiry: the record expires at the greatest event ms + TTL of its views; a write never brings
  it closer. A view with TTL 0 makes the record persistent, and a record without expiry stays so
  (only a TTL-0 view can leave a record without one: every other write sets it).

  Returns the number of values written. The file name's `n`: any number of keys (numkeys is
  given per call; in a Cluster every call carries one key).
]]
local field = ARGV[1]
local ttl = tonumber(ARGV[2])
local values = ARGV[3]
local pos = 1
local now = nil
local written = 0

for i = 1, #KEYS do
  local key = KEYS[i]
  local len = struct.unpack('>I4', values, pos)
  local value = string.sub(values, pos + 4, pos + 3 + len)
  pos = pos + 4 + len
  local e, c = struct.unpack('>d>d', value)
  local stored = redis.call('HGET', key, field)
  local newer = true
  if stored and string.sub(stored, 17, 20) == string.sub(value, 17, 20) then
    local se, sc = struct.unpack('>d>d', stored)
    newer = e > se or (e == se and c > sc)
  end
  if newer then
    -- -2: no record yet, -1: persistent, else the ms it has left.
    local pttl = redis.call('PTTL', key)
    redis.call('HSET', key, field, value)
    if ttl == 0 then
      if pttl >= 0 then redis.call('PERSIST', key) end
    elseif pttl ~= -1 then
      local at = math.ceil(e + ttl)
      if pttl == -2 then
        redis.call('PEXPIREAT', key, string.format('%.0f', at))
      else
        if not now then
          local t = redis.call('TIME')
          now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end
        if at > now + pttl then redis.call('PEXPIREAT', key, string.format('%.0f', at)) end
      end
    end
    written = written + 1
  end
end

return written
