"""
The 1:1 video chats' state in Redis (seed 001's 匹配, 约聊, 对聊): every
change is one Lua script, so two nodes (or two requests of one user) can
never put a user in two places at once.

Layout (REALM "heihei"):
- `chatu:heihei:<uid>` STRING: where the user is. `m` waiting in the match
  queue; `c|<chatId>` in a chat (an invitation they sent or got, or an open
  chat). Absent: free. A user is in at most one of these at a time.
- `chat:heihei:<chatId>` HASH: `a` (who matched into a waiting user / who
  invited), `b`, `kind` (`match`|`due`), `status` (`invite`, `open`, and the
  ends `ended`, `cancelled`, `missed`), `created`, `opened`, `ended` (ms),
  `reason`, `joined_a`/`joined_b`, `paused_a`/`paused_b`, `topic` (index into
  the topic catalog), `answered` (1 once an invitation became a chat). Kept
  `CHAT_KEEP_MS` after it ends (get-chat, message-list).
- `chatq:heihei` ZSET uid -> ms they entered: the match queue, oldest first.
- `chatlast:heihei:<uid>` STRING: the partner of the user's last match (never
  twice in a row), kept `LAST_KEEP_MS`.

Timers (when a match expires, an invitation lapses, a heart-beat is missed)
are in heihei.heihei.deadlines (`ctimers:heihei`). The scripts that put a
user somewhere arm its countdown in the same step, and the ones that free a
user remove it, so a node killed right after a script cannot leave a user
busy with no countdown to free them. Firing only ever calls the scripts here,
which change nothing when the state has moved on, so a timer fired twice (a
node died between firing and finishing) does nothing the second time.
"""

from __future__ import annotations

from heihei.heihei.accounts import REALM
from heihei.store.keys import key
from heihei.store.scripts import Script

#: an ended chat's hash stays this long (get-chat, the message-list's "call"/"calling")
CHAT_KEEP_MS = 7 * 24 * 3600 * 1000
#: how long "never twice in a row with the same partner" remembers the last partner
LAST_KEEP_MS = 24 * 3600 * 1000

MATCHING = "m"
INVITE, OPEN, ENDED, CANCELLED, MISSED = "invite", "open", "ended", "cancelled", "missed"


def user_key(uid: str) -> str:
    return key("chatu", REALM, uid)


def chat_key(chat_id: str) -> str:
    return key("chat", REALM, chat_id)


QUEUE = key("chatq", REALM)
USER_PREFIX = key("chatu", REALM) + ":"
CHAT_PREFIX = key("chat", REALM) + ":"
LAST_PREFIX = key("chatlast", REALM) + ":"
BLOCK_PREFIX = key("blk", REALM) + ":"
CHAT_SEQ = key("seq", REALM, "chat")

MATCH = Script("heihei_chat_match", r"""
-- KEYS: 1 queue, 2 the caller's state, 3 the new chat's hash, 4 the timers zset.
-- ARGV: 1 uid, 2 now ms, 3 how many waiters to look at, 4 state prefix, 5 last-partner prefix,
--       6 block prefix, 7 new chat id, 8 last-partner ms, 9 when a match expires (ms),
--       10 when the join timeout of a new chat ends (ms).
-- Returns {0} queued (or already waiting), {1, chat id, partner} matched, {-1, state} busy elsewhere.
-- The caller takes the longest-waiting user who is not the caller, not its last partner (either way) and
-- not blocked (either way). Waiters whose state is no longer 'm' are swept out on the way.
local uid = ARGV[1]
local st = redis.call('GET', KEYS[2])
if st and st ~= 'm' then return {-1, st} end
local mylast = redis.call('GET', ARGV[5] .. uid)
local waiting = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
for i = 1, #waiting do
  local c = waiting[i]
  if c ~= uid then
    if redis.call('GET', ARGV[4] .. c) ~= 'm' then
      redis.call('ZREM', KEYS[1], c)
    elseif c ~= mylast and redis.call('GET', ARGV[5] .. c) ~= uid
        and not redis.call('ZSCORE', ARGV[6] .. uid, c) and not redis.call('ZSCORE', ARGV[6] .. c, uid) then
      local id = ARGV[7]
      redis.call('ZREM', KEYS[1], c, uid)
      redis.call('HSET', KEYS[3], 'a', c, 'b', uid, 'kind', 'match', 'status', 'open', 'created', ARGV[2],
                 'opened', ARGV[2])
      redis.call('SET', ARGV[4] .. c, 'c|' .. id)
      redis.call('SET', KEYS[2], 'c|' .. id)
      redis.call('SET', ARGV[5] .. c, uid, 'PX', ARGV[8])
      redis.call('SET', ARGV[5] .. uid, c, 'PX', ARGV[8])
      redis.call('ZREM', KEYS[4], 'match|' .. c, 'match|' .. uid)
      redis.call('ZADD', KEYS[4], ARGV[10], 'beat|' .. id .. '|' .. c, ARGV[10], 'beat|' .. id .. '|' .. uid)
      return {1, id, c}
    end
  end
end
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], uid)
redis.call('SET', KEYS[2], 'm')
redis.call('ZADD', KEYS[4], ARGV[9], 'match|' .. uid)
return {0}
""")

LEAVE_QUEUE = Script("heihei_chat_leave_queue", r"""
-- KEYS: 1 queue, 2 the user's state, 3 the timers zset. ARGV: 1 uid.
-- Returns 1 if the user was waiting (and is now free), 0 if not (matched meanwhile, or never there).
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('GET', KEYS[2]) == 'm' then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], 'match|' .. ARGV[1])
  return 1
end
return 0
""")

INVITE_SCRIPT = Script("heihei_chat_invite", r"""
-- KEYS: 1 the caller's state, 2 the target's state, 3 the new chat's hash, 4 the timers zset.
-- ARGV: 1 uid, 2 target, 3 new chat id, 4 now ms, 5 chat prefix, 6 when the invitation lapses (ms),
--       7 when the join timeout of a chat ends (ms).
-- Returns {1, id} invited; {2, id} mutual: the target's own invitation to the caller became a chat;
-- {-1, state} the caller is busy; {-2} the target is busy.
local theirs = redis.call('GET', KEYS[2])
if theirs and string.sub(theirs, 1, 2) == 'c|' then
  local other = string.sub(theirs, 3)
  local ck = ARGV[5] .. other
  if redis.call('HGET', ck, 'status') == 'invite' and redis.call('HGET', ck, 'a') == ARGV[2]
      and redis.call('HGET', ck, 'b') == ARGV[1] then
    redis.call('HSET', ck, 'status', 'open', 'opened', ARGV[4], 'answered', '1')
    redis.call('ZREM', KEYS[4], 'invite|' .. other)
    redis.call('ZADD', KEYS[4], ARGV[7], 'beat|' .. other .. '|' .. ARGV[1],
               ARGV[7], 'beat|' .. other .. '|' .. ARGV[2])
    return {2, other}
  end
end
local mine = redis.call('GET', KEYS[1])
if mine then return {-1, mine} end
if theirs then return {-2} end
redis.call('HSET', KEYS[3], 'a', ARGV[1], 'b', ARGV[2], 'kind', 'due', 'status', 'invite', 'created', ARGV[4])
redis.call('SET', KEYS[1], 'c|' .. ARGV[3])
redis.call('SET', KEYS[2], 'c|' .. ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[6], 'invite|' .. ARGV[3])
return {1, ARGV[3]}
""")

ACCEPT = Script("heihei_chat_accept", r"""
-- KEYS: 1 the chat, 2 the timers zset. ARGV: 1 uid (the invitee), 2 the inviter, 3 now ms, 4 chat id,
--   5 when the join timeout ends (ms).
-- Returns 1 the invitation is now an open chat, 0 no such invitation (any more) for this pair.
if redis.call('HGET', KEYS[1], 'status') ~= 'invite' or redis.call('HGET', KEYS[1], 'b') ~= ARGV[1]
    or redis.call('HGET', KEYS[1], 'a') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'open', 'opened', ARGV[3], 'answered', '1')
redis.call('ZREM', KEYS[2], 'invite|' .. ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[5], 'beat|' .. ARGV[4] .. '|' .. ARGV[1],
           ARGV[5], 'beat|' .. ARGV[4] .. '|' .. ARGV[2])
return 1
""")

CLOSE = Script("heihei_chat_close", r"""
-- KEYS: 1 the chat, 2 the timers zset (its countdowns go with it).
-- ARGV: 1 chat id, 2 state prefix, 3 the status the chat must have now,
--   4 the status it gets, 5 reason, 6 now ms, 7 keep ms, 8 who must be its inviter ('' anyone).
-- Returns 1 closed (both users free again), 0 it was not in that status, -1 no such chat, -2 not the inviter.
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return -1 end
if ARGV[8] ~= '' and redis.call('HGET', KEYS[1], 'a') ~= ARGV[8] then return -2 end
if st ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'reason', ARGV[5], 'ended', ARGV[6])
local mark = 'c|' .. ARGV[1]
redis.call('ZREM', KEYS[2], 'invite|' .. ARGV[1])
for _, slot in ipairs({'a', 'b'}) do
  local uid = redis.call('HGET', KEYS[1], slot)
  if redis.call('GET', ARGV[2] .. uid) == mark then redis.call('DEL', ARGV[2] .. uid) end
  redis.call('ZREM', KEYS[2], 'beat|' .. ARGV[1] .. '|' .. uid)
end
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return 1
""")

MARK = Script("heihei_chat_mark", r"""
-- KEYS: 1 the chat. ARGV: 1 uid, 2 field ('joined' or 'paused'), 3 value ('1' or '0').
-- Returns {slot 'a'|'b', the other's joined flag} while the chat is open and uid is in it; {} otherwise.
if redis.call('HGET', KEYS[1], 'status') ~= 'open' then return {} end
local slot
if redis.call('HGET', KEYS[1], 'a') == ARGV[1] then slot = 'a'
elseif redis.call('HGET', KEYS[1], 'b') == ARGV[1] then slot = 'b'
else return {} end
redis.call('HSET', KEYS[1], ARGV[2] .. '_' .. slot, ARGV[3])
local other = slot == 'a' and 'b' or 'a'
return {slot, redis.call('HGET', KEYS[1], 'joined_' .. other) or '0'}
""")
