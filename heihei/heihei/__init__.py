"""
Seed 001 (heihei): accounts, the REST API, the trusted messageserver API,
rooms, IM and offline pushes. `Social` (service.py) is the entry point; the
push channel adapter is `heihei/protocols/channel.py`. See docs/heihei.md.
"""
