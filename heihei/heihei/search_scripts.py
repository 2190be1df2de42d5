"""
The Lua scripts of the user search index (heihei/heihei/search.py says what
they promise): INDEX changes users' entries, each under compare and set;
SEARCH answers one query in one call. Keys and scores are computed by
search.py and handed in; a script builds only the bucketed names and heiNum
set keys, from the prefixes it is given.
"""

from __future__ import annotations

from heihei.store.scripts import Script

INDEX = Script("heihei_search_index", r"""
-- ARGV: 1 heiNum set prefix, 2 heiNum bucket size, 3 highest-heiNum key, 4 record count, then per record:
--   op ('i' index if the profile agrees, 'p' write profile fields then index, 'u' unindex),
--   uid, names hash, user hash, '1' if an entry is expected (else '0'), the expected entry,
--   the new name, the profile's displayName and heiNum that 'i' requires, the heiNum to index ('' none),
--   P, P field/value pairs ('p' writes them), R, R gram keys to leave, A, A (gram key, score) pairs to join.
-- An entry is '<heiNum>|<name>'. Returns one code per record: 1 done, 0 the entry was not the expected
-- one (nothing done), 2 the profile holds another name or heiNum, 3 there is no profile.
local hprefix, hbucket, maxkey = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local function hkey(h) return hprefix .. string.format('%d', math.floor(tonumber(h) / hbucket)) end
local i = 5
local codes = {}
for r = 1, tonumber(ARGV[4]) do
  local op, uid, nkey, ukey = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local has, expected, name = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local gname, ghei, heinum = ARGV[i + 7], ARGV[i + 8], ARGV[i + 9]
  i = i + 10
  local np = tonumber(ARGV[i]); local p0 = i + 1; i = p0 + 2 * np
  local nr = tonumber(ARGV[i]); local r0 = i + 1; i = r0 + nr
  local na = tonumber(ARGV[i]); local a0 = i + 1; i = a0 + 2 * na
  local code = 1
  local current = redis.call('HGET', nkey, uid)
  if (has == '1' and current ~= expected) or (has == '0' and current) then
    code = 0
  elseif op == 'i' then
    if redis.call('EXISTS', ukey) == 0 then
      code = 3
    else
      local p = redis.call('HMGET', ukey, 'displayName', 'heiNum')
      if (p[1] or '') ~= gname or (p[2] or '') ~= ghei then code = 2 end
    end
  end
  if code == 1 then
    if op == 'p' then
      if np > 0 then redis.call('HSET', ukey, unpack(ARGV, p0, p0 + 2 * np - 1)) end
      heinum = redis.call('HGET', ukey, 'heiNum') or ''
      if #heinum > 15 or not string.match(heinum, '^[1-9]%d*$') then heinum = '' end
    end
    for j = r0, r0 + nr - 1 do redis.call('ZREM', ARGV[j], uid) end
    for j = a0, a0 + 2 * na - 1, 2 do redis.call('ZADD', ARGV[j], ARGV[j + 1], uid) end
    local oldhei = current and string.match(current, '^(%d*)|') or ''
    if oldhei ~= '' and (op == 'u' or oldhei ~= heinum) then redis.call('ZREM', hkey(oldhei), uid) end
    if op == 'u' then
      redis.call('HDEL', nkey, uid)
    else
      redis.call('HSET', nkey, uid, heinum .. '|' .. name)
      if heinum ~= '' and heinum ~= oldhei then
        redis.call('ZADD', hkey(heinum), heinum, uid)
        if tonumber(heinum) > tonumber(redis.call('GET', maxkey) or '0') then redis.call('SET', maxkey, heinum) end
      end
    end
  end
  codes[r] = code
end
return codes
""")

SEARCH = Script("heihei_search", r"""
-- ARGV: 1 heiNum set prefix, 2 heiNum bucket size, 3 highest-heiNum key, 4 names hash prefix,
--       5 names bucket size, 6 offset, 7 limit, 8 most candidates examined,
--       9 the query if it is a canonical number (else ''), 10 fewest digits of a heiNum prefix,
--       11 most heiNum sets counted, 12 the normalised query, 13 '1' to check candidates against the stored
--       names, 14 walk every candidate when there are at most this many, 15 G, then G gram keys.
-- Returns {total, 1 if the total is an estimate, uids of the page...}.
local hprefix, hbucket, maxkey = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local nprefix, bucket = ARGV[4], tonumber(ARGV[5])
local offset, limit, maxc = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local digits, minpre, maxsets = ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11])
local needle, verify, exact_below, ng = ARGV[12], ARGV[13] == '1', tonumber(ARGV[14]), tonumber(ARGV[15])

local page, rank, total, estimated = {}, 0, 0, 0
local function take(uid)
  if rank >= offset and #page < limit then page[#page + 1] = uid end
  rank = rank + 1
end
local function names_key(uid)
  return nprefix .. string.format('%d', math.floor(tonumber(uid) / bucket))
end
local function hkey(b) return hprefix .. string.format('%.0f', b) end

local k = #digits
local idself = nil
-- listed by the heiNum sections (exact, or prefix for long enough queries)?
local function by_heinum(uid)
  local v = redis.call('HGET', names_key(uid), uid)
  local h = v and string.match(v, '^(%d*)|') or ''
  if h == '' then return false end
  return h == digits or (k >= minpre and #h > k and string.sub(h, 1, k) == digits)
end

if k > 0 then
  local n = tonumber(digits)
  for _, uid in ipairs(redis.call('ZRANGEBYSCORE', hkey(math.floor(n / hbucket)), digits, digits, 'LIMIT', 0, 16)) do
    total = total + 1; take(uid)
  end
  if redis.call('HEXISTS', names_key(digits), digits) == 1 and not by_heinum(digits) then
    total = total + 1; take(digits); idself = digits
  end
  if k >= minpre then
    -- longer heiNums starting with the digits: per length, the sets of the range in order
    local highest = tonumber(redis.call('GET', maxkey) or '0')
    local counted, skipped = 0, 0
    for len = k + 1, #string.format('%.0f', highest) do
      local span = 10 ^ (len - k)
      local lo = n * span
      local hi = math.min(lo + span - 1, highest)
      local los, his = string.format('%.0f', lo), string.format('%.0f', hi)
      local first, last = math.floor(lo / hbucket), math.floor(hi / hbucket)
      for b = first, last do
        if counted >= maxsets then skipped = skipped + 1 else
          counted = counted + 1
          local key = hkey(b)
          local c = redis.call('ZCOUNT', key, los, his)
          total = total + c
          if c > 0 and #page < limit and rank + c > offset then
            local skip = math.max(offset - rank, 0)
            local got = redis.call('ZRANGEBYSCORE', key, los, his, 'LIMIT', skip, limit - #page)
            rank = rank + skip
            for _, uid in ipairs(got) do take(uid) end
            rank = rank + c - skip - #got
          else
            rank = rank + c
          end
        end
      end
    end
    if skipped > 0 then  -- too many sets to count: the rest as dense as those counted
      estimated = 1
      total = total + math.floor(skipped * total / math.max(counted, 1) + 0.5)
    end
  end
end

if ng > 0 then
  local grams = {}
  for j = 1, ng do grams[j] = ARGV[15 + j] end
  if ng == 1 and not verify and k == 0 then
    -- the set is the answer, in order: a page is a range of ranks
    local c = redis.call('ZCARD', grams[1])
    total = total + c
    if #page < limit and rank + c > offset then
      local start = math.max(offset - rank, 0)
      for _, uid in ipairs(redis.call('ZRANGE', grams[1], start, start + limit - #page - 1)) do
        page[#page + 1] = uid
      end
    end
  else
    local cards, smallest = {}, 1
    for j = 1, ng do
      cards[j] = redis.call('ZCARD', grams[j])
      if cards[j] < cards[smallest] then smallest = j end
    end
    if cards[smallest] > 0 then
      -- walk the smallest set in its rank order (a query's grams all sit at fixed offsets from
      -- where it is found, so any one of them ranks the matches alike), check each member for the
      -- other grams (smallest first) and against the stored name: all of them when there are
      -- few (exact total), else until the page is full; never more than maxc
      local src, others = grams[smallest], {}
      for j = 1, ng do if j ~= smallest then others[#others + 1] = j end end
      table.sort(others, function(x, y) return cards[x] < cards[y] end)
      -- the check against the name implies every gram: one more set lookup (about as costly as
      -- any call from a script) pays only for its sifting
      if verify and #others > 1 then others = {others[1]} end
      local base = cards[smallest]
      local ncand = math.min(base, maxc)
      local walked, found = 0, 0
      local all = ncand <= exact_below
      local size = all and ncand or math.max(limit - #page + 4, 8)
      while walked < ncand and (all or #page < limit) do
        local chunk = redis.call('ZRANGE', src, walked, math.min(walked + size, ncand) - 1)
        for _, uid in ipairs(chunk) do
          if not all and #page >= limit then break end
          walked = walked + 1
          local ok = not (k > 0 and (uid == idself or by_heinum(uid)))
          for _, j in ipairs(others) do
            if not ok then break end
            ok = redis.call('ZSCORE', grams[j], uid) ~= false
          end
          if ok and verify then
            local v = redis.call('HGET', names_key(uid), uid)
            local name = v and string.match(v, '|(.*)$') or ''
            if string.find(name, ' ', 1, true) then name = (string.gsub(name, ' ', '')) end
            ok = string.find(name, needle, 1, true) ~= nil
          end
          if ok then found = found + 1; take(uid) end
        end
        -- the next chunk: what the share matched so far says the rest of the page needs
        if found > 0 then size = math.ceil((limit - #page) * walked / found * 1.25) + 4 else size = size * 2 end
        size = math.min(math.max(size, 8), 256)
      end
      local estimate = found
      if walked < base then
        -- not all looked at: the rest matches as the share looked at did (all of it, if the page
        -- was full before this section began)
        estimated = 1
        estimate = found + (base - walked) * (walked > 0 and found / walked or 1)
      end
      total = total + math.floor(estimate + 0.5)
    end
  end
end

local out = {total, estimated}
for _, uid in ipairs(page) do out[#out + 1] = uid end
return out
""")
