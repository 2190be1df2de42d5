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


#: what `twistd heihei --help` says below the options
LONGDESC = ("Every option is also a key of the [server] section of the --config TOML file (the command "
            "line wins). resources/heihei.example.toml (installed as heihei/resources/heihei.example.toml) "
            "lists every setting of every section with its default. "
            "--demo starts a loopback-only node with every login open, to try each protocol in two "
            "minutes (see the README).")


class Options(usage.Options):
    longdesc = LONGDESC
    optFlags = [["demo", None, "demo profile: every listener on 127.0.0.1, legacy logins on, pages at "
                               "/demo/ (never expose it)"]]
    optParameters = [("config", "c", None, "TOML configuration file")] + [
        [name, None, None, help_text] for name, _, help_text in SERVER_OPTIONS
    ]

    def parseOptions(self, options=None) -> None:
        """Under twistd, a bad option or setting ends start-up with its reason first.

        twistd answers a `UsageError` with the whole usage text (about 20 lines) and only then the
        reason; an operator needs the reason. In-process callers (tests) still get the UsageError."""
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            if getattr(self, "parent", None) is None:
                raise
            sys.stderr.write(f"heihei: {e}\n"
                             "(`twistd heihei --help` lists the options; resources/heihei.example.toml "
                             "every setting)\n")
            raise SystemExit(2) from None

    def postOptions(self) -> None:
        overrides = {key: self[name] for name, key, _ in SERVER_OPTIONS if self[name] is not None}
        if self["demo"]:
            overrides["demo"] = True
        try:
            self.settings: Settings = load_settings(self["config"], {"server": overrides})
            if self.settings.server.redis:
                parse_redis_url(self.settings.server.redis)
            if self.settings.server.demo:
                from heihei.demo.profile import demo_settings

                demo_settings(self.settings)  # a listener off loopback is refused here, before start-up
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
