--[[
  Reads whole tile records in one call: per record every field and value, as HGETALL gives them
  (name, value, name, value, ...). A server reads a record whole once, then knows it
  (redis/tile-merge.ts): one script call for hundreds of records costs the client one command to
  build and one reply to parse, where a pipeline cost it a command and a promise per record.

  KEYS[i]     the tile records
  Returns per key its HGETALL array (empty for a record that does not exist).
]]
local call = redis.call
local out = {}
for i = 1, #KEYS do out[i] = call('HGETALL', KEYS[i]) end
return out
