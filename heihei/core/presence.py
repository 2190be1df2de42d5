"""
Who is connected where: an in-memory map per node, mirrored into Redis.

In memory (this node): realm -> user -> connections, and (realm, room) ->
connections. In Redis (the cluster):
- `nodes` ZSET node id -> expiry (ms). A node refreshes its entry every
  `refresh_interval_s`; one that stops (kill -9) is dead once it expires.
- `pres:<realm>:<user>` and `room:<realm>:<room>` HASH node id -> connection
  count on that node. Totals are sums over *alive* nodes only, so a dead
  node's users are offline for everyone as soon as its entry expires.
- `nodeidx:<node>` SET of the hashes a node has fields in, so a node that
  comes back under the same id first wipes what it left behind (no stale
  resurrection), and any node can sweep a long-dead node's leftovers.

Every time-dependent decision takes `now` from the injected clock and passes
it to the scripts, so tests drive expiry with `task.Clock`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable

from twisted.internet import task
from twisted.logger import Logger

from heihei.incidents import STORE, report
from heihei.store.keys import key
from heihei.store.scripts import Script

NODES_KEY = key("nodes")
#: a node dead for this many TTLs has its leftovers swept by the others
SWEEP_AFTER_TTLS = 10

CHANGE_COUNT = Script("presence_change", r"""
-- KEYS: 1 hash (user or room), 2 nodes zset, 3 this node's index set
-- ARGV: 1 node id, 2 delta, 3 now ms. Returns the total over alive nodes.
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[3], KEYS[1])
else
  redis.call('SADD', KEYS[3], KEYS[1])
end
local now = tonumber(ARGV[3])
local total = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local expires = redis.call('ZSCORE', KEYS[2], all[i])
  if expires and tonumber(expires) > now then total = total + tonumber(all[i + 1]) end
end
return total
""")

#: `alive_nodes(hash, nodes_key, now)`: the {node, count, ...} of a presence hash whose nodes are
#: alive; shared by ALIVE_COUNTS and `heihei.core.routing`'s scripts
ALIVE_NODES_LUA = r"""
local function alive_nodes(hash_key, nodes_key, now)
  local all = redis.call('HGETALL', hash_key)
  local alive = {}
  for i = 1, #all, 2 do
    local expires = redis.call('ZSCORE', nodes_key, all[i])
    if expires and tonumber(expires) > now and tonumber(all[i + 1]) > 0 then
      table.insert(alive, all[i]); table.insert(alive, all[i + 1])
    end
  end
  return alive
end
"""

ALIVE_COUNTS = Script("presence_alive_counts", ALIVE_NODES_LUA + r"""
-- KEYS: 1 nodes zset, then hashes. ARGV: 1 now ms.
-- Returns, per hash, a flat list {node, count, node, count ...} of alive nodes.
local now = tonumber(ARGV[1])
local out = {}
for k = 2, #KEYS do
  out[k - 1] = alive_nodes(KEYS[k], KEYS[1], now)
end
return out
""")

FORGET_NODE = Script("presence_forget_node", r"""
-- KEYS: 1 the node's index set, 2 nodes zset. ARGV: 1 node id, 2 '1' to leave the registry,
-- 3 optional cutoff ms: only if the node's entry is still older than it (a sweep must not
-- wipe a node that refreshed since it was found dead). Returns -1 when it did nothing.
-- The hashes it clears come from the index set (not declared as KEYS): fine on one Redis,
-- not on Redis Cluster (docs/core.md).
if ARGV[3] and ARGV[3] ~= '' then
  local s = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if s and tonumber(s) > tonumber(ARGV[3]) then return -1 end
end
local hashes = redis.call('SMEMBERS', KEYS[1])
for i = 1, #hashes do redis.call('HDEL', hashes[i], ARGV[1]) end
redis.call('DEL', KEYS[1])
if ARGV[2] == '1' then redis.call('ZREM', KEYS[2], ARGV[1]) end
return #hashes
""")


SET_COUNTS = Script("presence_set_counts", r"""
-- KEYS: 1 this node's index set, then hashes. ARGV: 1 node id, then one count per hash.
-- Writes this node's absolute counts (after Redis lost them, or at start).
for i = 2, #KEYS do
  redis.call('HSET', KEYS[i], ARGV[1], ARGV[i])
  redis.call('SADD', KEYS[1], KEYS[i])
end
return #KEYS - 1
""")

ASSERT_COUNTS = Script("presence_assert_counts", r"""
-- KEYS: 1 this node's index set, then hashes. ARGV: 1 node id, then one count per hash.
-- This node's exact presence: its count in every hash it has connections in, and its field
-- gone from every other hash it had one in (a lost -1, a Redis restored from an older AOF).
-- Returns how many stale fields it removed.
local keep = {}
for i = 2, #KEYS do
  keep[KEYS[i]] = true
  redis.call('HSET', KEYS[i], ARGV[1], ARGV[i])
  redis.call('SADD', KEYS[1], KEYS[i])
end
local removed = 0
for _, hash in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not keep[hash] then
    removed = removed + redis.call('HDEL', hash, ARGV[1])
    redis.call('SREM', KEYS[1], hash)
  end
end
return removed
""")

#: every this many presence refreshes, the node asserts its exact presence (ASSERT_COUNTS)
ASSERT_EVERY_REFRESHES = 3


def user_key(realm: str, user: str) -> str:
    return key("pres", realm, user)


def room_key(realm: str, room: str) -> str:
    return key("room", realm, room)


def node_index_key(node_id: str) -> str:
    return key("nodeidx", node_id)


def is_expired(expires_ms: float, now_ms: float) -> bool:
    """A node entry that is not strictly in the future is dead."""
    return expires_ms <= now_ms


class Presence:
    """This node's connections, and cluster-wide questions about presence."""

    _log = Logger()

    def __init__(self, node_id: str, store, clock, *, ttl_s: float = 30.0, refresh_interval_s: float = 10.0) -> None:
        self.node_id = node_id
        self.store = store
        self.clock = clock
        self.ttl_s = ttl_s
        self.refresh_interval_s = refresh_interval_s
        self.users: dict[str, dict[str, set]] = defaultdict(dict)
        self.rooms: dict[tuple[str, str], set] = {}
        self.client_rooms: dict[object, set[tuple[str, str]]] = {}
        self._loop: task.LoopingCall | None = None
        self._ticks = 0

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Wipe what an earlier life of this node id left, then join the registry."""
        forgotten = await FORGET_NODE(self.store, [node_index_key(self.node_id), NODES_KEY], [self.node_id, "0", ""])
        if forgotten:
            self._log.info("cleared {n} stale presence entries of node {node}", n=forgotten, node=self.node_id)
        await self.refresh()
        await self.resync()  # connections accepted while the hub was starting
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(self.refresh_interval_s, now=False).addErrback(
            lambda f: self._log.failure("presence loop died", failure=f))

    async def stop(self) -> None:
        """Leave the cluster cleanly: our users are offline at once, not after the TTL."""
        self.stop_refreshing()
        await FORGET_NODE(self.store, [node_index_key(self.node_id), NODES_KEY], [self.node_id, "1", ""])

    def stop_refreshing(self) -> None:
        """Stop the heartbeat (also how tests simulate a crashed node)."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _tick(self):
        from twisted.internet.defer import Deferred

        d = Deferred.fromCoroutine(self._refresh_and_sweep())
        d.addCallbacks(lambda _: STORE.over(), lambda f: report(f, self._log, "presence refresh failed"))
        return d

    async def refresh(self) -> bool:
        """Renew this node's entry; True if it was missing (Redis lost it, or we were swept)."""
        expires = self.now_ms() + int(self.ttl_s * 1000)
        return int(await self.store.zadd(NODES_KEY, expires, self.node_id)) == 1

    def _local_counts(self) -> list[tuple[str, int]]:
        counts = [(user_key(realm, user), len(conns)) for realm, users in self.users.items()
                  for user, conns in users.items() if conns]
        counts += [(room_key(realm, room), len(members)) for (realm, room), members in self.rooms.items() if members]
        return counts

    async def resync(self) -> int:
        """Write this node's absolute connection counts for every local user and room."""
        counts = self._local_counts()
        if counts:
            await SET_COUNTS(self.store, [node_index_key(self.node_id)] + [k for k, _ in counts],
                             [self.node_id] + [n for _, n in counts])
        return len(counts)

    async def assert_exact(self) -> int:
        """This node's presence in Redis becomes exactly its local map; returns the stale fields removed.

        Counts in Redis are +1/-1 updates, so a -1 lost to an outage (a user who
        disconnected while Redis was frozen) would stay forever; this puts them
        right. The snapshot is taken and sent without an await between, and every
        presence command of this node travels the same pipelined connection in the
        order it was issued, so no change made meanwhile is overwritten."""
        counts = self._local_counts()
        return int(await ASSERT_COUNTS(self.store, [node_index_key(self.node_id)] + [k for k, _ in counts],
                                       [self.node_id] + [n for _, n in counts]))

    async def _refresh_and_sweep(self) -> None:
        self._ticks += 1
        if await self.refresh():
            n = await self.resync()
            self._log.warn("node {node} was missing from Redis presence; rewrote {n} entries", node=self.node_id, n=n)
        if self._ticks % ASSERT_EVERY_REFRESHES == 0:
            stale = await self.assert_exact()
            if stale:
                self._log.warn("node {node}: removed {n} stale presence entries", node=self.node_id, n=stale)
        long_dead = self.now_ms() - int(self.ttl_s * 1000 * SWEEP_AFTER_TTLS)
        for node in await self.store.zrangebyscore(NODES_KEY, "-inf", long_dead):
            if node != self.node_id:
                done = await FORGET_NODE(self.store, [node_index_key(node), NODES_KEY], [node, "1", long_dead])
                if int(done) >= 0:
                    self._log.info("swept presence of dead node {node}", node=node)

    async def alive_nodes(self) -> list[str]:
        return list(await self.store.zrangebyscore(NODES_KEY, f"({self.now_ms()}", "+inf"))

    # -- local connections -------------------------------------------------------

    def local(self, realm: str, user: str) -> set:
        return self.users[realm].get(user, set())

    def local_room(self, realm: str, room: str) -> set:
        return self.rooms.get((realm, room), set())

    async def add(self, realm: str, user: str, client) -> tuple[bool, int]:
        """Register a connection. Returns (first connection cluster-wide, total connections)."""
        conns = self.users[realm].setdefault(user, set())
        conns.add(client)
        total = await self._change(user_key(realm, user), +1)
        return total == 1, total

    async def remove(self, realm: str, user: str, client) -> tuple[bool, int]:
        """Unregister. Returns (that was the user's last connection cluster-wide, total left)."""
        conns = self.users[realm].get(user)
        if not conns or client not in conns:
            return False, -1
        conns.discard(client)
        if not conns:
            del self.users[realm][user]
        total = await self._change(user_key(realm, user), -1)
        return total == 0, total

    async def join_room(self, realm: str, room: str, client,
                        on_first: Callable[[], None] | None = None) -> tuple[bool, int]:
        """Returns (first local member, room total across alive nodes).

        Whether this is the first local member is decided (and `on_first` run)
        before any await, so concurrent joins and leaves cannot both miss it or
        both see it (the bus subscription depends on it)."""
        members = self.rooms.setdefault((realm, room), set())
        if client in members:
            return False, await self.room_total(realm, room)
        first = not members
        members.add(client)
        self.client_rooms.setdefault(client, set()).add((realm, room))
        if first and on_first is not None:
            on_first()
        total = await self._change(room_key(realm, room), +1)
        return first, total

    async def leave_room(self, realm: str, room: str, client,
                         on_last: Callable[[], None] | None = None) -> tuple[bool, int]:
        """Returns (last local member gone, room total across alive nodes); `on_last` runs before any await."""
        members = self.rooms.get((realm, room))
        if not members or client not in members:
            return False, -1
        members.discard(client)
        rooms = self.client_rooms.get(client)
        if rooms is not None:
            rooms.discard((realm, room))
            if not rooms:
                del self.client_rooms[client]
        last = not members
        if last:
            del self.rooms[(realm, room)]
            if on_last is not None:
                on_last()
        total = await self._change(room_key(realm, room), -1)
        return last, total

    def rooms_of(self, client) -> list[tuple[str, str]]:
        """The (realm, room)s a connection is in here (kept per client: no scan of every room)."""
        return list(self.client_rooms.get(client, ()))

    async def _change(self, hash_key: str, delta: int) -> int:
        total = await CHANGE_COUNT(self.store, [hash_key, NODES_KEY, node_index_key(self.node_id)],
                                   [self.node_id, delta, self.now_ms()])
        return int(total)

    # -- cluster-wide queries -------------------------------------------------------

    async def nodes_of(self, realm: str, users: Iterable[str]) -> dict[str, list[str]]:
        """For each user, the alive nodes they are connected on (empty = offline)."""
        users = list(users)
        if not users:
            return {}
        rows = await ALIVE_COUNTS(self.store, [NODES_KEY] + [user_key(realm, u) for u in users], [self.now_ms()])
        return {u: list(row[0::2]) for u, row in zip(users, rows)}

    async def is_online(self, realm: str, user: str) -> bool:
        return bool((await self.nodes_of(realm, [user]))[user])

    async def online_among(self, realm: str, users: Iterable[str]) -> list[str]:
        return [u for u, nodes in (await self.nodes_of(realm, users)).items() if nodes]

    async def room_total(self, realm: str, room: str) -> int:
        rows = await ALIVE_COUNTS(self.store, [NODES_KEY, room_key(realm, room)], [self.now_ms()])
        return sum(int(c) for c in rows[0][1::2])

    async def room_nodes(self, realm: str, room: str) -> list[str]:
        rows = await ALIVE_COUNTS(self.store, [NODES_KEY, room_key(realm, room)], [self.now_ms()])
        return list(rows[0][0::2])
