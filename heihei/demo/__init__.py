"""
The demo profile (`twistd -n heihei --demo`): a node to try every protocol on this machine in two
minutes. `profile.py` turns settings into the demo's (loopback listeners, legacy logins on) and
seeds an open live activity; `web.py` serves the pages at `/demo/` and what they need. The WeChat
and SMS stand-ins are outbound providers (`heihei/outbound/demo.py`).
"""
