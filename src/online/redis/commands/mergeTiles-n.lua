--[[
  Merges tile partials (streaming/partial.ts) into the tile records of an aggregation view,
  deletes the tiles that fell out of every window, and keeps each record alive for the
  retention. Atomic: no other command runs between the read of a tile and its write, so
  concurrent writers never lose an event.

  KEYS[i]     the tile record of entity i: a hash with one field per tile, `<tileMs>:<index>`,
              holding its partials (little-endian doubles, 9 per column), and the field `swept`
              (below). A key may come more than once (a long batch is split); each is merged in turn.
  ARGV[1]     the record's lifetime after a sweep, decimal ms (PEXPIRE): the retention plus the
              longest time between sweeps (TILE_SWEEP_MS in store.ts), so it outlives every write
              until the next sweep
  ARGV[2]     the tile sizes, in layout order: one byte, their number; then per size: one byte,
              the length of the text of its tileMs, that text (the fields' prefix), the cutoff
              (a little-endian double: fields of this size with a smaller index are deleted), and
              a tile's byte length (a little-endian uint32, 72 per column)
  ARGV[3]     the batch, in KEYS order, per key: the number of fields (little-endian uint16), then
              per field: one byte, the ordinal of its size in ARGV[2] (from 1); its tile index (a
              little-endian double); one byte, the field name's length; the name; then the tile,
              the size's byte length of little-endian doubles (tileBytes in partial.ts).
              One binary argument for the whole batch: no per-field argument for Redis to build,
              and the doubles are read in place.

  Merge: the rule of mergePartial in partial.ts, operation for operation and in the same order,
  so the doubles are those a merge in TypeScript gives, bit for bit (Lua numbers are IEEE
  doubles). The batch is the newer side. A column of the batch without events leaves the stored
  column's bytes as they are; a field absent from the record is stored as the batch's bytes.

  Deleting old tiles: `swept` holds, per size (little-endian doubles in ARGV[2]'s order), the
  greatest cutoff any write has applied to the record: no field of that size below it exists.
  So a write deletes only the indexes between the stored mark and its own cutoff, naming them in
  one HDEL (a record written once per tile costs one name per size and tile); when that span is
  longer than RANGE_MAX (a record idle for a while) it looks at the fields instead (HKEYS), which
  costs the record's size once. A batch field below the mark (a writer whose clock is behind
  another's) is dropped like one below the cutoff: it would be deleted at the next write anyway,
  and the mark stays true. A record without `swept` is new.

  Commands per key: HMGET (`swept` and the batch's fields) and HSET (every merged or new field);
  when the cutoffs moved (they move in steps, at most once per TILE_SWEEP_MS) also HDEL of the
  tiles that fell out, `swept`, and PEXPIRE; HKEYS after an idle span. A key none of whose
  fields is written is left as it is (no deletion, no expiry refresh, no new record).

  Returns the number of tile fields written. The file name's `n`: any number of keys (numkeys is
  given per call; in a Cluster every call carries one key).
]]
local call, sub, find, tonumber, spread = redis.call, string.sub, string.find, tonumber, unpack
local decode, encode = struct.unpack, struct.pack

local SWEPT = 'swept'
local PARTIAL = '<ddddddddd'
local SPAN = 72 -- bytes of one column's partial
local RANGE_MAX = 64
local CHUNK = 1000 -- names per HDEL

local ttl, sizes, batch = ARGV[1], ARGV[2], ARGV[3]

-- The sizes: per ordinal its field prefix, cutoff and tile length; per prefix its ordinal.
local nsizes, p = decode('<B', sizes, 1)
local prefixes, cutoffs, lengths, ordinals = {}, {}, {}, {}
for j = 1, nsizes do
  prefixes[j], cutoffs[j], lengths[j], p = decode('<Bc0dI4', sizes, p)
  ordinals[prefixes[j]] = j
end
local marksFormat = '<' .. string.rep('d', nsizes)

-- The stored tile merged with the batch's tile batch[from, from + length - 1], as bytes.
local function merge(stored, from, length)
  local parts, count = nil, 0
  for at = 0, length - SPAN, SPAN do
    local part
    local nb, sb, mb, qb, lob, hib, lmb, lcb, lb = decode(PARTIAL, batch, from + at)
    if nb == 0 then
      part = sub(stored, at + 1, at + SPAN)
    elseif decode('<d', stored, at + 1) == 0 then
      -- Nothing stored in this column yet: the batch's partial as it is (as mergePartial copies).
      part = sub(batch, from + at, from + at + SPAN - 1)
    else
      local na, sa, ma, qa, loa, hia, lma, lca, la = decode(PARTIAL, stored, at + 1)
      local n = na + nb
      local delta = mb - ma
      if lob < loa then loa = lob end
      if hib > hia then hia = hib end
      if lmb > lma or (lmb == lma and lcb >= lca) then lma, lca, la = lmb, lcb, lb end
      part = encode(PARTIAL, n, sa + sb, ma + delta * nb / n, qa + qb + delta * delta * na * nb / n, loa, hia, lma, lca, la)
    end
    if length == SPAN then return part end
    count = count + 1
    parts = parts or {}
    parts[count] = part
  end
  return table.concat(parts, '', 1, count)
end

-- Reused from key to key, with explicit lengths.
local get, set, del = { SWEPT }, {}, {}
local sizeOf, indexOf, tileAt = {}, {}, {}
local keep = {}
local pos = 1
local written = 0

for i = 1, #KEYS do
  local key = KEYS[i]
  local nfields
  nfields, pos = decode('<H', batch, pos)
  for f = 1, nfields do
    local j
    j, indexOf[f], get[f + 1], pos = decode('<BdBc0', batch, pos)
    sizeOf[f], tileAt[f] = j, pos
    pos = pos + lengths[j]
  end
  local stored = call('HMGET', key, spread(get, 1, nfields + 1))

  -- The cutoffs this record keeps: the greater of the call's and the stored marks.
  local swept = stored[1]
  local moved = not swept
  local deletes, scan = 0, false
  for j = 1, nsizes do
    local cut = cutoffs[j]
    if swept then
      local mark = decode('<d', swept, 8 * j - 7)
      if mark >= cut then
        cut = mark
      else
        moved = true
        if cut - mark > RANGE_MAX then
          scan = true
        elseif not scan then
          local prefix = prefixes[j] .. ':'
          for index = mark, cut - 1 do
            deletes = deletes + 1
            del[deletes] = prefix .. index
          end
        end
      end
    end
    keep[j] = cut
  end

  local sets = 0
  for f = 1, nfields do
    local j = sizeOf[f]
    if indexOf[f] >= keep[j] then
      local from = tileAt[f]
      local old = stored[f + 1]
      sets = sets + 2
      set[sets - 1] = get[f + 1]
      if old then
        set[sets] = merge(old, from, lengths[j])
      else
        set[sets] = sub(batch, from, from + lengths[j] - 1)
      end
    end
  end

  local tiles = sets / 2
  if tiles > 0 then
    if scan then
      deletes = 0
      local names = call('HKEYS', key)
      for k = 1, #names do
        local name = names[k]
        local colon = find(name, ':', 1, true)
        if colon then
          local j = ordinals[sub(name, 1, colon - 1)]
          if j and tonumber(sub(name, colon + 1)) < keep[j] then
            deletes = deletes + 1
            del[deletes] = name
          end
        end
      end
    end
    for from = 1, deletes, CHUNK do
      call('HDEL', key, spread(del, from, math.min(deletes, from + CHUNK - 1)))
    end
    if moved then
      sets = sets + 2
      set[sets - 1] = SWEPT
      set[sets] = encode(marksFormat, spread(keep, 1, nsizes))
    end
    call('HSET', key, spread(set, 1, sets))
    -- The expiry moves with the sweep (a new record, or cutoffs that moved): ARGV[1] outlives
    -- the writes until the next one. Between sweeps a write is HMGET and HSET only.
    if moved then call('PEXPIRE', key, ttl) end
    written = written + tiles
  end
end

return written
