"""
Plots of the room fan-out results (matplotlib, written as PNG next to the
JSON lines): server CPU per delivery against N (closed loop, bursts, window), and
latency percentiles at the fixed offered rate against N, one line per server.

Re-plot a session of a results file (default: the newest):

    /work/venv/bin/python bench/plot.py bench/results/room_fanout.jsonl [SESSION]
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402

COLORS = {"heihei": "tab:red", "ws": "tab:green", "websockets": "tab:blue"}


def _series(summaries, server, mode, metric):
    points = sorted((s["n"], s[metric]) for s in summaries
                    if s["server"] == server and s["mode"] == mode and metric in s and s[metric]["median"] is not None)
    xs = [n for n, _ in points]
    med = [v["median"] for _, v in points]
    lo = [v["median"] - v["min"] for _, v in points]
    hi = [v["max"] - v["median"] for _, v in points]
    return xs, med, [lo, hi]


def plot_room(summaries: list[dict[str, Any]], path: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    servers = [s for s in ("heihei", *common.PEER_KINDS) if any(x["server"] == s for x in summaries)]
    label = summaries[0].get("label", "") if summaries else ""
    fig, (ax_cpu, ax_lat) = plt.subplots(1, 2, figsize=(12, 4.8))
    for server in servers:
        color, name = COLORS.get(server), common.SERVER_LABELS.get(server, server)
        for mode, style in (("closed", "-o"), ("burst", "--s"), ("window", "-.d"), ("rate", ":^")):
            xs, ys, err = _series(summaries, server, mode, "cpu_us_per_delivery")
            if xs:
                ax_cpu.errorbar(xs, ys, yerr=err, fmt=style, color=color, capsize=3, label=f"{name} {mode}")
        for metric, style in (("p50_ms", "-o"), ("p99_ms", "--s"), ("max_ms", ":^")):
            xs, ys, err = _series(summaries, server, "rate", metric)
            if xs:
                ax_lat.errorbar(xs, ys, yerr=err, fmt=style, color=color, capsize=3,
                                label=f"{name} {metric.split('_')[0]}")
    ax_cpu.set_title("server CPU per delivery")
    ax_cpu.set_xlabel("receivers N")
    ax_cpu.set_ylabel("µs / delivery (utime+stime)")
    ax_cpu.set_ylim(bottom=0)
    ax_lat.set_title("latency at a fixed offered rate")
    ax_lat.set_xlabel("receivers N")
    ax_lat.set_ylabel("ms, send to receive")
    ax_lat.set_yscale("log")
    ns = sorted({s["n"] for s in summaries})
    for ax in (ax_cpu, ax_lat):
        ax.set_xscale("log")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{title} ({label}; median of runs, bars = range)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def session_summaries(path: str, session: str | None = None) -> list[dict[str, Any]]:
    """The summaries of `session` in a results file (default: the newest session)."""
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    summaries = [r for r in records if r.get("type") == "summary"]
    if not summaries:
        return []
    session = session or max(r["session"] for r in summaries)
    return [r for r in summaries if r["session"] == session]


if __name__ == "__main__":
    source = sys.argv[1]
    out = os.path.splitext(source)[0] + ".png"
    print(plot_room(session_summaries(source, sys.argv[2] if len(sys.argv) > 2 else None), out,
                    os.path.basename(source)))
