"""
Which listeners stay on this machine.

The operator surfaces (the manhole, `/metrics`) and every listener of the demo profile must
not be reachable from other hosts unless an operator says so. Twisted's endpoint descriptions
(`tcp:8082`, `tcp:8082:interface=127.0.0.1`, `ssl:443:...`, `unix:/run/x.sock`) listen on every
interface when they name none, so these helpers read the description and add or check the
`interface=`. They parse the description themselves because Twisted's parser is private; the
grammar is small: `:`-separated, `\\` escapes the next character, `key=value` for options.
"""

from __future__ import annotations

import ipaddress

from heihei.config import ConfigError

#: endpoint kinds that listen on a TCP port (and so have an interface)
TCP_KINDS = ("tcp", "tcp6", "ssl")
#: endpoint kinds that never leave the machine
LOCAL_KINDS = ("unix",)


def split_description(description: str) -> list[str]:
    """`tcp:80:interface=\\:\\:1` -> ["tcp", "80", "interface=::1"] (escapes resolved)."""
    parts, current, escaped = [], [], False
    for char in description:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost`; an empty host (every interface) is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def interface_of(description: str) -> str | None:
    """The `interface=` a TCP description names; "" for a TCP description without one (every
    interface); None for a kind that has no interface (a Unix socket)."""
    parts = split_description(description)
    kind = parts[0].lower() if parts else ""
    if kind in LOCAL_KINDS:
        return None
    if kind not in TCP_KINDS:
        raise ConfigError(f"{description!r}: cannot tell where a {kind!r} listener listens")
    for part in parts[1:]:
        name, sep, value = part.partition("=")
        if sep and name == "interface":
            return value
    return ""


def on_loopback_by_default(description: str) -> str:
    """The description, bound to loopback when it names no interface (an explicit interface is the
    operator's choice and is kept)."""
    if interface_of(description) == "":
        loopback = "\\:\\:1" if split_description(description)[0].lower() == "tcp6" else "127.0.0.1"
        return f"{description}:interface={loopback}"
    return description


def on_loopback_only(description: str, option: str) -> str:
    """The description, bound to loopback when it names no interface; a ConfigError naming the
    option when it names one that is not loopback."""
    bound = on_loopback_by_default(description)
    interface = interface_of(bound)
    if interface is not None and not is_loopback(interface):
        raise ConfigError(f"--{option} {description} listens on {interface}, not on loopback: "
                          "the demo profile listens on 127.0.0.1 only")
    return bound
