"""
Which customer-service agent a visitor gets (`getReceiver` without a
`receiverId`), as protocols.md says:

1. the agent the visitor had last time, while that user is still registered as
   an agent (online or not: the visitor keeps talking to the same person, and
   an offline agent gets the messages when back);
2. else the online agent with the fewest open conversations;
3. else (nobody online) any agent, again the one with the fewest open
   conversations, so messages wait in a lightly loaded agent's inbox.

Ties go to the smallest id, so the choice is reproducible. A conversation is
open while the visitor was assigned or wrote within `[jim] open_conversation_s`.
Two visitors assigned at the same instant may both get the same least loaded
agent (the counts are read, then written): balance is a preference, not a lock.
"""

from __future__ import annotations

from typing import Iterable


def choose_agent(agents: Iterable[str], online: Iterable[str], open_counts: dict[str, int]) -> str | None:
    """The agent for a visitor without a sticky one (pure, so tests need no Redis)."""
    agents = list(agents)
    online = set(online)
    pool = [a for a in agents if a in online] or agents
    if not pool:
        return None
    return min(pool, key=lambda a: (open_counts.get(a, 0), a))
