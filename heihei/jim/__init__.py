"""
The jim realm's domain (seed 003, J-IM customer service).

- `store.py`   the realm's own Redis state: users and tokens, agents and their
               assignments, contacts (chat lists), message locations for recall
- `assign.py`  which agent a visitor is given (pure decision + bookkeeping)
- `service.py` `Jim`: the operations both wire surfaces use; messages go
               through the hub (history, inbox, unread counters, groups)

The wire format of the WebSocket is in `heihei/protocols/jim.py`, the
`/im/vanke/*` HTTP API in `heihei/web/vanke.py`; the
`?username=&password=` authentication hook in `heihei/outbound/jim_auth.py`;
the decisions are written down in docs/jim.md.
"""
