"""
Start what a benchmark measures: one redis-server and one or more real
`twistd heihei` nodes on loopback, each pinned to a core, with the file
descriptor limit and listen backlog raised for thousands of connections.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
BACKLOG = 4096
NOFILE = 65536


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (stable on a noisy machine)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _limits(cpu: int | None):
    def apply():
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(NOFILE, hard), hard))
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {cpu})

    return apply


@dataclass
class Node:
    name: str
    proc: subprocess.Popen
    ports: dict[str, int]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, listener: str, path: str = "/", scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.ports[listener]}{path}"


@dataclass
class Cluster:
    tmp: str
    redis: subprocess.Popen | None = None
    redis_port: int = 0
    durable: bool = False
    nodes: list[Node] = field(default_factory=list)

    @classmethod
    def start(cls, n_nodes: int = 1, config: str = "", cpus: list[int] | None = None,
              durable: bool = False) -> "Cluster":
        """`durable`: Redis writes an AOF fsynced on every write (`restart_redis` after a kill -9 reads it)."""
        cluster = cls(tmp=tempfile.mkdtemp(prefix="heihei-bench-"))
        cluster.redis_port = free_port()
        cluster.durable = durable
        cluster.start_redis()
        config_path = os.path.join(cluster.tmp, "bench.toml")
        with open(config_path, "w") as f:
            f.write(config)
        for i in range(n_nodes):
            cpu = cpus[i % len(cpus)] if cpus else None
            cluster.nodes.append(cluster._start_node(f"n{i}", config_path, cpu))
        for node in cluster.nodes:
            cluster._wait_healthy(node)
        return cluster

    def start_redis(self) -> None:
        from heihei.store.embedded import redis_server_binary

        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]
        self.redis = subprocess.Popen(
            [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", "",
             *persistence, "--dir", self.tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def restart_redis(self) -> None:
        """After a kill -9: the same port and directory (a durable cluster's AOF is read back)."""
        self.redis.wait(10)
        self.start_redis()

    def _start_node(self, name: str, config_path: str, cpu: int | None) -> Node:
        ports = {k: free_port() for k in ("http", "live", "boss", "jim")}
        args = [TWISTD, "-n", "--pidfile=", "heihei", "--config", config_path,
                "--redis", f"redis://127.0.0.1:{self.redis_port}/0", "--node-id", name,
                "--data-dir", os.path.join(self.tmp, name)]
        for listener, port in ports.items():
            args += [f"--{listener}", f"tcp:{port}:interface=127.0.0.1:backlog={BACKLOG}"]
        log = open(os.path.join(self.tmp, f"{name}.log"), "w")
        env = dict(os.environ, PYTHONPATH=ROOT)
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=_limits(cpu))
        return Node(name, proc, ports)

    def _wait_healthy(self, node: Node, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                raise RuntimeError(f"node {node.name} exited; see {self.tmp}/{node.name}.log")
            try:
                with urllib.request.urlopen(node.url("http", "/healthz", "http"), timeout=2) as r:
                    if json.loads(r.read())["redis"]["reachable"]:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"node {node.name} never became healthy")

    def stop(self) -> None:
        for node in self.nodes:
            node.proc.terminate()
        for node in self.nodes:
            try:
                node.proc.wait(15)
            except subprocess.TimeoutExpired:
                node.proc.kill()
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(10)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
