--[[
  Writes one view's values of several entities, each only when newer than the stored one, and
  keeps each record's expiry. Atomic: no other command runs between the compare and the write.

  KEYS[i]     the record of entity i: a hash with one field per feature view
  ARGV[1]     the view: the hash field
  ARGV[2]     the rows, in KEYS order, each:
                a big-endian uint32 byte length, then the value: a 20-byte header (event ms and
                created ms as big-endian doubles, the view's schema fingerprint), then the
                MessagePack feature values;
                one byte, the number of digits, then the row's expiry as decimal epoch ms: event
                ms + TTL rounded up, or 253402300799999 (9999-12-31T23:59:59.999Z) for a view
                without TTL.
              One argument rather than one per key halves the client's work per row; the expiry
              comes as text because turning a number into text (string.format, or a number
              given to redis.call) costs Redis about half a microsecond a row.

  Newer: a greater event time, or an equal one with a greater created time. A stored value
  of another schema fingerprint (written before a breaking change) is always replaced.

  Expiry: every record expires at the greatest expiry of the rows written to it (PEXPIREAT GT
  never brings it closer), so a view without TTL keeps its record until 9999. A record always has
  an expiry once this script returns, so one without is one this call just created, and
  PEXPIREAT NX sets the first expiry in one command. An expiry already past (old data, a short
  TTL) deletes a record this call created at once, and never shortens one that exists.

  Commands per row: a field seen for the first time costs HSETNX (the compare: the field is
  absent) and PEXPIREAT NX; a field present costs HGET, then HSET and PEXPIREAT GT when newer.
  The first command follows the previous row's case, so a first load and a reload each pay their
  cheaper path (a wrong guess costs one command, never a wrong answer).

  Returns the number of values written. The file name's `n`: any number of keys (numkeys is
  given per call; in a Cluster every call carries one key).
]]
local call, sub, byte, unpack = redis.call, string.sub, string.byte, struct.unpack
local field = ARGV[1]
local rows = ARGV[2]
local pos = 1
local written = 0
local absent = true

for i = 1, #KEYS do
  local key = KEYS[i]
  -- This row's value is rows[from, to], its expiry rows[to + 2, pos - 1]; strings are cut only when sent.
  local from = pos + 4
  local to = pos + 3 + unpack('>I4', rows, pos)
  pos = to + 2 + byte(rows, to + 1)

  local stored
  if absent then
    if call('HSETNX', key, field, sub(rows, from, to)) == 0 then stored = call('HGET', key, field) end
  else
    stored = call('HGET', key, field)
    if not stored then call('HSET', key, field, sub(rows, from, to)) end
  end

  if not stored then
    absent = true
    local at = sub(rows, to + 2, pos - 1)
    if call('PEXPIREAT', key, at, 'NX') == 0 then call('PEXPIREAT', key, at, 'GT') end
    written = written + 1
  else
    absent = false
    local e, c, f = unpack('>d>d>I4', rows, from)
    local se, sc, sf = unpack('>d>d>I4', stored)
    if f ~= sf or e > se or (e == se and c > sc) then
      call('HSET', key, field, sub(rows, from, to))
      call('PEXPIREAT', key, sub(rows, to + 2, pos - 1), 'GT')
      written = written + 1
    end
  end
end

return written
