"""
The boss realm (seed 002) beyond its wire adapter: frame grammar, login
tickets, groups and their pictures, user profiles, uploads and media.
`heihei/protocols/boss.py` wires it into a node; docs/boss.md describes it.
"""
