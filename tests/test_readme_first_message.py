"""The README's "first message in two minutes": its very command lines, run against a demo node.

The lines are read from the README (so the README cannot drift from what works), their default
ports replaced by the test node's, and typed into the same clients a newcomer uses: websockets'
command-line client (`python -m websockets URL`) and curl.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time

import pytest

from tests.browser.conftest import DemoNode
from tests.test_twistd import ROOT

DEFAULT_PORTS = {"http": 8082, "live": 9502, "boss": 6060, "jim": 8889}
#: how long a client waits between the lines it types, and after the last one
TYPING_S = 0.8
SETTLE_S = 1.5


def readme_blocks() -> dict[str, list[str]]:
    """The indented command blocks of the section, by the protocol named in their bullet."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("## First message in two minutes", 1)[1].split("\n## ", 1)[0]
    blocks: dict[str, list[str]] = {}
    current = None
    for line in section.splitlines():
        bullet = re.match(r"^- \*\*([\w-]+)\*\*", line)
        if bullet:
            current = bullet.group(1).lower()
        elif current and line.startswith("      ") and line.strip():
            blocks.setdefault(current, []).append(line.strip())
    return blocks


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    node = DemoNode(str(tmp_path_factory.mktemp("readme")))
    yield node
    node.stop()


def local(line: str, node: DemoNode) -> str:
    for name, port in DEFAULT_PORTS.items():
        line = line.replace(f"127.0.0.1:{port}", f"127.0.0.1:{node.ports[name]}")
    return line


class Cli:
    """`python -m websockets URL` as a person runs it: lines typed in, what it printed read after."""

    def __init__(self, command: str) -> None:
        argv = shlex.split(command)
        assert argv[:3] == ["python", "-m", "websockets"], command
        self.proc = subprocess.Popen([sys.executable, *argv[1:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, encoding="utf-8",
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        time.sleep(TYPING_S)

    def type(self, *lines: str) -> None:
        for line in lines:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            time.sleep(TYPING_S)

    def received(self) -> list[str]:
        """Close the input (the client then closes the connection) and give what arrived."""
        time.sleep(SETTLE_S)
        out, _ = self.proc.communicate(timeout=20)
        return [m.group(1) for m in re.finditer(r"< (.*?)(?:\x1b|\r|\n|$)", out)]


def test_the_readme_shows_every_protocol():
    assert set(readme_blocks()) == {"live", "boss", "j-im", "heihei"}


def test_live(demo):
    command, *lines = [local(line, demo) for line in readme_blocks()["live"]]
    listener = Cli(command)
    listener.type(lines[0])  # a second page that only opened the room
    speaker = Cli(command)
    speaker.type(*lines)
    frames = [json.loads(text) for text in speaker.received() + listener.received()]
    said = [f for f in frames if f.get("cmd") == "Message" and f["code"] == 1]
    assert [(f["data"]["userName"], f["data"]["msg"], f["data"]["my"]) for f in said] == [
        ("alice", "大家好", "1"), ("alice", "大家好", "0")], frames


def test_boss(demo):
    command, login, text = [local(line, demo) for line in readme_blocks()["boss"]]
    assert login == "login_1" and text.startswith("text_2_")
    receiver = Cli(command)
    receiver.type("login_2")
    sender = Cli(command)
    sender.type(login, text)
    assert sender.received() == ["ok"]
    got = receiver.received()
    assert got[0] == "ok" and re.fullmatch(r"text_1_你好_unicast_1_[0-9]+_x", got[1]), got


def test_jim(demo):
    command, chat = [local(line, demo) for line in readme_blocks()["j-im"]]
    agent = Cli(command.replace("customer1", "agent"))
    customer = Cli(command)
    customer.type(chat)
    sent = [json.loads(text) for text in customer.received()]
    got = [json.loads(text) for text in agent.received()]
    assert [f["command"] for f in sent] == [6, 12] and sent[1]["code"] == 10000, sent
    assert got[1]["command"] == 11 and got[1]["data"]["from"] == "customer1" and got[1]["data"]["content"] == "你好"


def curl(line: str) -> dict:
    argv = shlex.split(line)
    assert argv[0] == "curl", line
    done = subprocess.run([*argv, "--silent", "--show-error", "--max-time", "10"], capture_output=True, text=True,
                          timeout=20)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_heihei(demo):
    ask, show, sign_in, channel, message = [local(line, demo) for line in readme_blocks()["heihei"]]
    tokens = {}
    for phone in ("13800000001", "13800000002"):  # on a fresh node: users 10001 (the README's phone) and 10002
        assert curl(ask.replace("13800000001", phone))["errorcode"] == 0
        code = curl(show.replace("13800000001", phone))["code"]
        answer = curl(sign_in.replace("13800000001", phone).replace("CODE", code))
        assert answer["errorcode"] == 0, answer
        tokens[answer["userInfo"]["id"]] = answer["token"]
    assert set(tokens) == {10001, 10002}
    receiver = Cli(channel.replace("TOKEN", tokens[10002]))
    sender = Cli(channel.replace("TOKEN", tokens[10001]))
    sender.type(message)
    items = [item for text in receiver.received() for item in json.loads(text)]
    sender.received()
    im = [item for item in items if item.get("msgType") == "IM"]
    assert im and im[0]["msg"]["content"] == {"text": "你好"} and im[0]["msg"]["fromUserId"] == 10001, items
