"""
The realms' protocol modules. Each module has `install(node)`, which puts its
protocol on the node's factory, registers its renderer with the hub and mounts
its HTTP resources. The node calls every installer while it is being built.
"""

from __future__ import annotations

import importlib
import importlib.util

PROTOCOL_MODULES = ("heihei.protocols.live", "heihei.protocols.boss", "heihei.protocols.jim",
                    "heihei.protocols.channel")


def install_all(node) -> list[str]:
    """Install every realm whose module is present; returns the installed module names."""
    installed = []
    for name in PROTOCOL_MODULES:
        if importlib.util.find_spec(name) is None:
            continue  # that realm's protocol has not landed: its listener says "not implemented yet"
        importlib.import_module(name).install(node)
        installed.append(name)
    return installed
