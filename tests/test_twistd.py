"""`twistd heihei` as an operator runs it: a real process, real signals."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from heihei.store.embedded import free_loopback_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


def twistd(args, cwd, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([TWISTD, "-n", "--pidfile=", "heihei", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def listener_args():
    ports = {name: free_loopback_port() for name in ("http", "live", "boss", "jim")}
    args = []
    for name, port in ports.items():
        args += [f"--{name}", f"tcp:{port}:interface=127.0.0.1"]
    return ports, args


def wait_healthy(port, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.communicate()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                body = json.loads(r.read())
                if body["redis"]["reachable"]:
                    return body
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("server never became healthy")


def test_server_with_embedded_redis_runs_and_exits_0_on_sigterm(tmp_path):
    ports, args = listener_args()
    proc = twistd([*args, "--data-dir", str(tmp_path / "data"), "--log-format", "json"], tmp_path)
    try:
        body = wait_healthy(ports["http"], proc)
        assert body["connections"] == {"live": 0, "boss": 0, "jim": 0, "channel": 0}
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert events, out
    messages = [e["message"] for e in events]
    assert any("redis-server is ready" in m for m in messages)
    assert any("redis-server stopped" in m for m in messages)
    assert all({"time", "level", "namespace", "message"} <= set(e) for e in events)
    # the embedded Redis kept its data in the data dir, with AOF on
    assert (tmp_path / "data" / "redis" / "appendonly.aof").exists()


def test_taken_port_fails_start_up_naming_it(tmp_path):
    ports, args = listener_args()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args[args.index("--boss") + 1] = f"tcp:{port}:interface=127.0.0.1"
        proc = twistd([*args, "--data-dir", str(tmp_path / "d")], tmp_path)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    # twistd sends stderr to its log once logging has begun
    assert f"heihei: cannot listen on tcp:{port}:interface=127.0.0.1 (--boss)" in out + err
    assert "Address already in use" in out + err
    assert "Traceback" not in out + err


def test_malformed_redis_url_is_a_usage_error(tmp_path):
    proc = twistd(["--redis", "redis://host:notaport/0"], tmp_path)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "malformed Redis URL 'redis://host:notaport/0'" in out + err
    assert "Traceback" not in out + err


def test_the_server_process_tunes_the_garbage_collector(tmp_path):
    # full collections stopped a 5,000-connection node for 0.2-0.6 s (heihei/gctuning.py)
    code = "\n".join([
        "import gc, sys",
        "from heihei.gctuning import YOUNG_THRESHOLD",
        "from heihei.tap import Options, makeService",
        "options = Options()",
        "options.parseOptions(['--data-dir', sys.argv[1], '--redis', 'redis://127.0.0.1:9/0'])",
        "assert gc.get_threshold()[0] != YOUNG_THRESHOLD and gc.get_freeze_count() == 0",
        "makeService(options)",
        "print(gc.get_threshold()[0] == YOUNG_THRESHOLD, gc.get_freeze_count() > 10000)",
    ])
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "True"], done.stderr


@pytest.mark.parametrize("args, reason", [
    (["--config", "bad.toml"], "heihei: unknown setting 'htp' in [server]"),
    (["--htp", "tcp:1"], "heihei: option --htp not recognized"),
])
def test_a_bad_setting_or_option_names_the_problem_first(tmp_path, args, reason):
    (tmp_path / "bad.toml").write_text('[server]\nhtp = "x"\n')
    proc = twistd(args, tmp_path)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    lines = (out + err).strip().splitlines()
    assert lines[0] == reason, lines
    assert len(lines) <= 2 and "resources/heihei.example.toml" in lines[1]
    assert "Usage:" not in out + err


def test_help_points_to_the_example_configuration(tmp_path):
    done = subprocess.run([TWISTD, "heihei", "--help"], cwd=tmp_path, env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert "resources/heihei.example.toml" in " ".join(done.stdout.split())


def test_demo_profile_listens_on_loopback_only_and_says_so_once(tmp_path):
    ports = {name: free_loopback_port() for name in ("http", "live", "boss", "jim")}
    args = [part for name, port in ports.items() for part in (f"--{name}", f"tcp:{port}")]
    proc = twistd(["--demo", *args, "--data-dir", str(tmp_path / "data"), "--log-format", "json"], tmp_path)
    try:
        wait_healthy(ports["http"], proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    demo = [e for e in events if "DEMO PROFILE" in e["message"]]
    assert len(demo) == 1 and demo[0]["level"] == "warn"
    # one clear warning: the open doors it names are not warned about again, one by one
    assert [e["message"] for e in events if e["level"] in ("warn", "error", "critical")] == [demo[0]["message"]]
    listening = next(e["message"] for e in events if "listeners:" in e["message"])
    for name, port in ports.items():
        assert f"{name}=tcp:{port}:interface=127.0.0.1" in listening, listening


def test_demo_profile_refuses_a_listener_beyond_loopback(tmp_path):
    proc = twistd(["--demo", "--http", "tcp:0:interface=0.0.0.0", "--data-dir", str(tmp_path / "d")], tmp_path)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert (out + err).startswith("heihei: --http tcp:0:interface=0.0.0.0 listens on 0.0.0.0, not on loopback")
