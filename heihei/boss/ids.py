"""
What a boss user or group id is: what the original clients use (digits), plus
the usual account-name characters. Never `_` (the frame separator), never
empty, at most 64 characters. Kept in the domain because the group API, the
login tickets and the frame grammar all apply the same rule.
"""

import re

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.@\-]{0,63}")
