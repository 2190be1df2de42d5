"""
`twistd heihei`: command-line options and the service tree.

Only wiring here. Every option can also be set in the `[server]` section of
the `--config` TOML file; the command line wins.
"""

from __future__ import annotations

import sys

from twisted.python import usage

from heihei.config import ConfigError, Settings, load_settings, parse_redis_url

#: (option, TOML key in [server], help)
SERVER_OPTIONS = [
    ("http", "http", "HTTP site: REST APIs, /healthz, /metrics, /ws/channel [default: tcp:8082]"),
    ("live", "live", "live-activity chat WebSocket listener [default: tcp:9502]"),
    ("boss", "boss", "underscore-protocol WebSocket + group API listener [default: tcp:6060]"),
    ("jim", "jim", "J-IM WebSocket listener [default: tcp:8889]"),
    ("manhole", "manhole", "SSH operator shell, e.g. tcp:2222:interface=127.0.0.1 [default: off]"),
    ("manhole-keys", "manhole_keys", "OpenSSH authorized_keys file for the manhole"),
    ("redis", "redis", "redis://[:password@]host:port/db of an existing Redis [default: embedded]"),
    ("data-dir", "data_dir", "data directory (embedded Redis, node id, uploads) [default: ./heihei-data]"),
    ("node-id", "node_id", "this node's id in the cluster [default: generated, kept in the data dir]"),
    ("log-format", "log_format", "text or json [default: text]"),
]


class Options(usage.Options):
    optParameters = [("config", "c", None, "TOML configuration file")] + [
        [name, None, None, help_text] for name, _, help_text in SERVER_OPTIONS
    ]

    def postOptions(self) -> None:
        overrides = {key: self[name] for name, key, _ in SERVER_OPTIONS if self[name] is not None}
        try:
            self.settings: Settings = load_settings(self["config"], {"server": overrides})
            if self.settings.server.redis:
                parse_redis_url(self.settings.server.redis)
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
        if self.settings.server.log_format == "json" and getattr(self, "parent", None) is not None:
            # twistd chooses its log observer before our service exists; its own
            # --logger slot is the supported way to replace it.
            self.parent["logger"] = "heihei.logs.json_observer"


def makeService(options: Options, reactor=None):
    from heihei.gctuning import tune_for_server
    from heihei.node import Node, StartupError

    try:
        node = Node(options.settings, reactor=reactor, handle_signals=True)
    except (ConfigError, StartupError) as e:
        sys.stderr.write(f"heihei: {e}\n")
        raise SystemExit(2) from None
    tune_for_server()
    return node
