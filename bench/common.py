"""
What every benchmark scenario shares: pinning and limits, the servers under
test (heihei clusters and the reference peers), a fake WeChat OAuth API for
live logins, the statistics over runs and the JSON-lines results.

Layout on this 2-core box: everything that serves (heihei nodes, their
redis-server, or a peer) runs on CPU 0; the load generator (this process,
asyncio + uvloop) runs on CPU 1. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import select
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import wsload  # noqa: E402
from bench.cluster import Cluster, cpu_seconds, free_port, rss_bytes  # noqa: E402

RESULTS = os.path.join(BENCH, "results")
PEERS = os.path.join(BENCH, "peers")
SERVER_CPU = 0
CLIENT_CPU = 1
ADMIN_TOKEN = "bench-admin-token"
WECHAT_APPID = "wx-bench-appid"
WECHAT_SECRET = "wx-bench-secret"
ACTIVITY = "bench"
#: every server kind a scenario may compare; heihei first, peers after
PEER_KINDS = ("ws", "websockets")
SERVER_LABELS = {"heihei": "heihei", "ws": "Node ws", "websockets": "websockets"}


# -- the load generator's own process ---------------------------------------------------------------

def setup_client_process(cpu: int = CLIENT_CPU) -> dict[str, Any]:
    """Pin this process to the client core, raise its fd limit, use uvloop."""
    wsload.use_uvloop()
    nofile = wsload.raise_nofile_limit(65536)
    pinned = None
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > cpu:
        os.sched_setaffinity(0, {cpu})
        pinned = cpu
    return {"client_cpu": pinned, "nofile": nofile, "cores": os.cpu_count()}


def _pin_and_limit(cpu: int | None):
    def apply():
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(65536, hard), hard))
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {cpu})

    return apply


def pin(pid: int, cpu: int = SERVER_CPU) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, {cpu})


def process_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def self_cpu() -> float:
    return time.process_time()


# -- labels and results -----------------------------------------------------------------------------

def git_label() -> dict[str, Any]:
    """The commit the run measured, and whether heihei/ differed from it (work in progress)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    if os.environ.get("BENCH_COMMIT"):  # a tree that is not a checkout (git archive of an older commit)
        return {"commit": os.environ["BENCH_COMMIT"], "heihei_dirty": False, "label": os.environ["BENCH_COMMIT"]}
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = bool(git("status", "--porcelain", "--", "heihei"))
    return {"commit": commit, "heihei_dirty": dirty, "label": commit + ("+wip" if dirty else "")}


def loadavg() -> list[float]:
    """The 1/5/15-minute load averages: other work on the box shows here."""
    return [round(x, 2) for x in os.getloadavg()]


def session_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S")


def use_results_dir(quick: bool, path: str | None = None) -> str:
    """Where this invocation writes: `--results`, or a temporary directory for `--quick`
    (smoke tests must not mix with the measured sessions kept in bench/results)."""
    global RESULTS
    if path:
        RESULTS = os.path.abspath(path)
    elif quick:
        import tempfile

        RESULTS = os.path.join(tempfile.gettempdir(), "heihei-bench-quick")
    return RESULTS


def append_results(scenario: str, records: list[dict[str, Any]]) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{scenario}.jsonl")
    with open(path, "a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    return path


def summarize_metrics(runs: list[dict[str, Any]], metrics) -> dict[str, Any]:
    """`median_range` of each metric the runs reported (metrics no run has are left out)."""
    out = {}
    for metric in metrics:
        values = [r.get(metric) for r in runs]
        if any(v is not None for v in values):
            out[metric] = median_range(values)
    return out


def median_range(values: list[float]) -> dict[str, Any]:
    """Median of the runs with their range (NaN-free; empty -> None)."""
    clean = sorted(v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v)))
    if not clean:
        return {"median": None, "min": None, "max": None, "runs": []}
    n = len(clean)
    mid = clean[n // 2] if n % 2 else (clean[n // 2 - 1] + clean[n // 2]) / 2
    return {"median": mid, "min": clean[0], "max": clean[-1], "runs": list(values)}


def latency_summary(latencies_ns) -> dict[str, float | None]:
    """p50/p99/max in milliseconds of per-delivery latencies in nanoseconds."""
    values = sorted(latencies_ns)
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {"p50_ms": wsload.percentile(values, 50) / 1e6, "p99_ms": wsload.percentile(values, 99) / 1e6,
            "max_ms": values[-1] / 1e6}


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def fmt_range(stat: dict[str, Any], digits: int = 2) -> str:
    if stat["median"] is None:
        return "-"
    if len([v for v in stat["runs"] if v is not None]) < 2:
        return fmt(stat["median"], digits)
    return f"{fmt(stat['median'], digits)} [{fmt(stat['min'], digits)}–{fmt(stat['max'], digits)}]"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def print_table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (printed and returned, so README tables are copied verbatim)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


# -- heihei ---------------------------------------------------------------------------------------

def heihei_config(wechat_url: str = "http://127.0.0.1:9", **sections: dict[str, Any]) -> str:
    """A bench config: no rate limits in the way, room for 10,000+ connections, live logins
    against the fake WeChat, boss plain logins (insecure_login), a fixed admin token."""
    config: dict[str, dict[str, Any]] = {
        "admin": {"token": ADMIN_TOKEN},
        "live": {"wechat_appid": WECHAT_APPID, "wechat_secret": WECHAT_SECRET, "wechat_api": wechat_url,
                 "rate": 1e9, "burst": 1_000_000, "max_connections": 30000},
        "boss": {"insecure_login": True, "rate_per_second": 1e9, "rate_burst": 1_000_000,
                 "max_connections": 30000},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


def start_heihei(n_nodes: int, config: str, durable: bool = False) -> Cluster:
    """Nodes and their redis-server, all on the server core (`durable`: Redis with an fsynced AOF)."""
    cluster = Cluster.start(n_nodes, config, cpus=[SERVER_CPU], durable=durable)
    if cluster.redis is not None:
        pin(cluster.redis.pid, SERVER_CPU)
    return cluster


def admin_put_activity(cluster: Cluster, activity_id: str = ACTIVITY) -> dict[str, Any]:
    """Create an open live activity through the admin API (started a minute ago, ends in a day)."""
    now = int(time.time())
    body = json.dumps({"title": "bench", "startTime": now - 60, "endTime": now + 86400}).encode()
    request = urllib.request.Request(cluster.nodes[0].url("http", f"/admin/live/activities/{activity_id}", "http"),
                                     data=body, method="PUT",
                                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


class FakeWeChat:
    """WeChat's two OAuth2 calls on loopback (asyncio, in the load generator's process).

    Any code `<name>` becomes openid `o-<name>`, nickname `<name>`; the appid and
    secret must be the bench ones, as the real API would insist."""

    def __init__(self) -> None:
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.calls = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "FakeWeChat":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                target = head.split(b" ", 2)[1].decode()
                self.calls += 1
                body = json.dumps(self.answer(target), ensure_ascii=False).encode()
                keep = b"connection: close" not in head.lower()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s" % (
                    len(body), b"" if keep else b"Connection: close\r\n", body))
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    @staticmethod
    def answer(target: str) -> dict[str, Any]:
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(target)
        args = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/sns/oauth2/access_token":
            if args.get("appid") != WECHAT_APPID or args.get("secret") != WECHAT_SECRET:
                return {"errcode": 40125, "errmsg": "invalid appsecret"}
            code = args.get("code", "")
            return {"access_token": "AT-" + code, "expires_in": 7200, "openid": "o-" + code,
                    "scope": "snsapi_userinfo"}
        if parts.path == "/sns/userinfo":
            code = args.get("access_token", "")[3:]
            return {"openid": "o-" + code, "nickname": code, "headimgurl": "https://img.example/bench.png"}
        return {"errcode": 40001, "errmsg": "unknown path"}


# -- reference peers ----------------------------------------------------------------------------------

def ensure_node_modules() -> None:
    if os.path.isdir(os.path.join(PEERS, "node_modules", "ws")):
        return
    command = ["npm", "ci"] if os.path.exists(os.path.join(PEERS, "package-lock.json")) else ["npm", "install"]
    subprocess.run(command + ["--no-audit", "--no-fund"], cwd=PEERS, check=True, timeout=300)


@dataclass
class Peer:
    kind: str
    proc: subprocess.Popen
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    @classmethod
    def start(cls, kind: str, cpu: int = SERVER_CPU, timeout: float = 30.0) -> "Peer":
        port = free_port()
        if kind == "ws":
            ensure_node_modules()
            command = ["node", os.path.join(PEERS, "ws_broadcast.js"), str(port)]
        elif kind == "websockets":
            command = [sys.executable, os.path.join(PEERS, "websockets_broadcast.py"), str(port)]
        else:
            raise ValueError(f"unknown peer {kind}")
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                preexec_fn=_pin_and_limit(cpu), cwd=PEERS)
        peer = cls(kind, proc, port)
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""  # "ready" once listening
        if line.strip() != "ready":
            peer.stop()
            raise RuntimeError(f"peer {kind} did not start within {timeout} s: {line!r}")
        return peer

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# -- servers under test, uniformly ------------------------------------------------------------------------

@dataclass
class Target:
    """One server under test: where clients connect and which processes to measure."""

    kind: str  # "heihei", "ws", "websockets"
    urls: list[str]  # one per node (peers: one)
    pids: list[int]  # the serving processes (CPU and RSS are summed over these)
    aux_pids: dict[str, int] = field(default_factory=dict)  # e.g. redis, reported separately
    cluster: Cluster | None = None
    peer: Peer | None = None

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        if self.peer is not None:
            self.peer.stop()

    def cpu(self) -> float:
        return process_cpu(self.pids)

    def aux_cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.aux_pids.items()}

    def rss(self) -> int:
        return sum(rss_bytes(pid) for pid in self.pids)


def redis_command_calls(port: int) -> dict[str, int]:
    """Calls per command since the redis-server started (INFO commandstats), over plain RESP."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n")
        data = b""
        while b"\r\n" not in data:
            data += sock.recv(65536)
        head, _, data = data.partition(b"\r\n")
        size = int(head[1:])
        while len(data) < size:
            data += sock.recv(65536)
    calls = {}
    for line in data[:size].decode().splitlines():
        if line.startswith("cmdstat_"):
            name, _, stats = line[len("cmdstat_"):].partition(":")
            fields = dict(kv.split("=", 1) for kv in stats.split(","))
            calls[name] = int(fields["calls"])
    return calls


def calls_delta(before: dict[str, int], after: dict[str, int], per: int) -> dict[str, float]:
    """Commands per `per` (message), most frequent first, without the INFO calls themselves."""
    delta = {k: v - before.get(k, 0) for k, v in after.items() if k != "info" and v - before.get(k, 0) > 0}
    return {k: round(v / per, 2) for k, v in sorted(delta.items(), key=lambda kv: -kv[1])} if per else {}


def heihei_target(n_nodes: int, listener: str, config: str, path: str = "/", durable: bool = False) -> Target:
    cluster = start_heihei(n_nodes, config, durable)
    return Target("heihei", [node.url(listener, path) for node in cluster.nodes], [n.pid for n in cluster.nodes],
                  {"redis": cluster.redis.pid} if cluster.redis is not None else {}, cluster=cluster)


def peer_target(kind: str) -> Target:
    peer = Peer.start(kind)
    return Target(kind, [peer.url()], [peer.pid], peer=peer)


async def close_all(conns) -> None:
    """Drop every client connection and give the loop a moment to let them go."""
    for conn in conns:
        conn.abort()
    await asyncio.sleep(0.2)


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu_model": model, "cores": os.cpu_count(), "python": sys.version.split()[0],
            "hostname": socket.gethostname()}
