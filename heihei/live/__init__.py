"""
The live-activity realm's domain (seed 000): activities, WeChat login,
login tokens, mute lists, online-total pushes and the operator tools.

`heihei.protocols.live` is the thin wire adapter in front of `LiveService`;
`heihei.web.admin` is the operators' HTTP face of `LiveOperators`.
"""
