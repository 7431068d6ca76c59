--[[
  Writes tile records of an aggregation view whose tiles the client has merged itself, each only
  if nobody wrote the record since the client read it: a compare-and-set on the record's version.
  With the merge arithmetic in the client (redis/tile-merge.ts), Redis does per record an HGET
  and an HSET, where merging partials here cost it about 1.3 µs per column and tile.

  KEYS[i]     the tile record of entity i: a hash with one field per tile, `<tileMs>:<index>`, the
              field `swept` (the cutoffs applied so far, tile-merge.ts) and the field `v`, the
              record's version, incremented by every write
  ARGV[1]     the record's lifetime after a sweep, decimal ms (PEXPIRE)
  ARGV[2]     the tile sizes: one byte, their number; per size one byte, the length of the text
              of its tileMs, and that text (the fields' prefix)
  ARGV[3]     per key, in KEYS order: the version read (a little-endian double; -1: no record);
              one byte of flags (1: the record is swept: PEXPIRE; 2: look at every field and
              delete those below the cutoffs that follow, one little-endian double per size);
              the number of fields to set and of fields to delete (little-endian uint16 each);
              then per field to set: one byte, its name's length; the name; a little-endian
              uint32, its value's length; the value; then per field to delete: its name's length
              (one byte) and the name

  Returns the 1-based positions in KEYS of the records whose version was not the one read:
  nothing was written to them, and the client reads and merges them again.
]]
local call, sub, find, tonumber, spread = redis.call, string.sub, string.find, tonumber, unpack
local decode = struct.unpack

local CHUNK = 1000 -- values per HSET or HDEL, within Lua's unpack limit

local ttl, sizes, batch = ARGV[1], ARGV[2], ARGV[3]

local nsizes, p = decode('<B', sizes, 1)
local ordinals = {}
for j = 1, nsizes do
  local prefix
  prefix, p = decode('<Bc0', sizes, p)
  ordinals[prefix] = j
end

local conflicts = {}
local set, del, cut = {}, {}, {}
local pos = 1

local function chunked(command, key, values, count)
  for from = 1, count, CHUNK do
    call(command, key, spread(values, from, math.min(count, from + CHUNK - 1)))
  end
end

for i = 1, #KEYS do
  local key = KEYS[i]
  local expected, flags, nset, ndel
  expected, flags, pos = decode('<dB', batch, pos)
  if flags >= 2 then
    for j = 1, nsizes do cut[j], pos = decode('<d', batch, pos) end
  end
  nset, ndel, pos = decode('<HH', batch, pos)
  local sets = 0
  for f = 1, nset do
    local name, length
    name, length, pos = decode('<Bc0I4', batch, pos)
    set[sets + 1] = name
    set[sets + 2] = sub(batch, pos, pos + length - 1)
    sets = sets + 2
    pos = pos + length
  end
  local dels = 0
  for f = 1, ndel do
    dels = dels + 1
    del[dels], pos = decode('<Bc0', batch, pos)
  end

  local stored = call('HGET', key, 'v')
  local version = stored and tonumber(stored) or -1
  if version ~= expected then
    conflicts[#conflicts + 1] = i
  else
    set[sets + 1] = 'v'
    set[sets + 2] = tostring(version < 0 and 1 or version + 1)
    chunked('HSET', key, set, sets + 2)
    if flags >= 2 then
      -- An idle record: its old tiles are found by name.
      dels = 0
      local names = call('HKEYS', key)
      for k = 1, #names do
        local name = names[k]
        local colon = find(name, ':', 1, true)
        if colon then
          local j = ordinals[sub(name, 1, colon - 1)]
          if j and tonumber(sub(name, colon + 1)) < cut[j] then
            dels = dels + 1
            del[dels] = name
          end
        end
      end
    end
    if dels > 0 then chunked('HDEL', key, del, dels) end
    if flags % 2 == 1 then call('PEXPIRE', key, ttl) end
  end
end

return conflicts
