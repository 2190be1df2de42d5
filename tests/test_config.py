import dataclasses
import re

import pytest

from heihei.paths import resource
from heihei.config import ConfigError, Settings, build_settings, load_settings, parse_redis_url
from heihei.tap import Options


def example_text() -> str:
    return resource("heihei.example.toml").read_text()


def uncommented_example() -> str:
    """The example with every `# key = value` turned into a real setting."""
    lines = []
    for line in example_text().splitlines():
        m = re.match(r"^# (\w+ = .*?)(\s+#.*)?$", line)
        lines.append(m.group(1) if m else line)
    return "\n".join(lines)


def test_example_config_documents_every_setting_with_its_default(tmp_path):
    path = tmp_path / "all.toml"
    path.write_text(uncommented_example())
    loaded = load_settings(str(path))
    assert loaded == Settings()
    text = example_text()
    for section in dataclasses.fields(Settings):
        block = text.split(f"\n[{section.name}]\n", 1)[1].split("\n[", 1)[0]
        for f in dataclasses.fields(section.default_factory()):
            assert re.search(rf"^# {f.name} = ", block, re.M), f"[{section.name}] {f.name} not documented"


def test_command_line_wins_over_file_which_wins_over_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[server]\nhttp = "tcp:1111"\nlive = "tcp:2222"\n[redis]\nreply_timeout_s = 2\n')
    options = Options()
    options.parseOptions(["--config", str(path), "--live", "tcp:3333"])
    s = options.settings
    assert s.server.http == "tcp:1111"
    assert s.server.live == "tcp:3333"
    assert s.server.boss == "tcp:6060"
    assert s.redis.reply_timeout_s == 2.0


@pytest.mark.parametrize("toml, message", [
    ('[server]\nhtp = "x"\n', "unknown setting 'htp' in [server]"),
    ('[nope]\na = 1\n', "unknown config section [nope]"),
    ('[redis]\npool_size = "four"\n', "[redis] pool_size must be of type int"),
    ('[live]\npermessage_deflate = 1\n', "[live] permessage_deflate must be of type bool"),
    ('[server\n', "is not valid TOML"),
])
def test_bad_config_files_are_usage_errors(tmp_path, toml, message):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(Exception) as info:
        Options().parseOptions(["--config", str(path)])
    assert message in str(info.value)
    assert info.type.__name__ == "UsageError"


def test_missing_config_file_is_a_usage_error(tmp_path):
    with pytest.raises(Exception, match="cannot read config file"):
        Options().parseOptions(["--config", str(tmp_path / "missing.toml")])


@pytest.mark.parametrize("url", ["redis//x", "http://host:1/0", "redis://:pw@/0", "redis://h:notaport/0",
                                 "redis://h:1/db"])
def test_malformed_redis_url_is_a_usage_error(url):
    with pytest.raises(Exception) as info:
        Options().parseOptions(["--redis", url])
    assert info.type.__name__ == "UsageError"
    assert "malformed Redis URL" in str(info.value)


def test_redis_url_forms():
    a = parse_redis_url("redis://:s%40cret@10.0.0.5:6380/3")
    assert (a.host, a.port, a.password, a.db) == ("10.0.0.5", 6380, "s@cret", 3)
    assert "s@cret" not in a.describe()
    b = parse_redis_url("redis://localhost")
    assert (b.host, b.port, b.db, b.password) == ("localhost", 6379, 0, None)
    c = parse_redis_url("unix:///run/redis.sock?db=2")
    assert (c.unix_path, c.db) == ("/run/redis.sock", 2)


def test_allowed_origins_accepts_a_list_or_comma_string():
    s = build_settings([{"jim": {"allowed_origins": "https://a.example:443, http://b:80"}}])
    assert s.jim.allowed_origins == ("https://a.example:443", "http://b:80")
    with pytest.raises(ConfigError):
        load_settings(None, {"server": {"log_format": "xml"}})
