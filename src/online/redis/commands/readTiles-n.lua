--[[
  Reads many tile records in one call: per record the values of some of its fields, as HMGET
  gives them. One script call for hundreds of records costs the client one command to build and
  one reply to parse, where a pipeline of HMGETs cost it a command and a promise per record.

  KEYS[i]     the tile records
  ARGV[1]     per key, in KEYS order: the number of fields (a little-endian uint16), then per field
              one byte, its name's length, and the name

  Returns per key an array of the fields' values (nil where absent), in the order asked.
]]
local call, decode, spread = redis.call, struct.unpack, unpack
local names = ARGV[1]
local pos = 1
local out = {}
local fields = {}
for i = 1, #KEYS do
  local n
  n, pos = decode('<H', names, pos)
  for f = 1, n do fields[f], pos = decode('<Bc0', names, pos) end
  out[i] = call('HMGET', KEYS[i], spread(fields, 1, n))
end
return out
