"""
Coverage-guided fuzzing of heihei's wire parsers with atheris (libFuzzer).

    .venv/bin/python bench/fuzz.py                 # every target, 180 s each
    .venv/bin/python bench/fuzz.py --quick         # every target, 15 s each (a smoke run)
    .venv/bin/python bench/fuzz.py --seconds 600 --targets boss_frames jim_frames

Each target (bench/fuzz/<target>.py) feeds one input to one parser and
treats any exception other than the parser's documented refusal as a crash;
an input that takes longer than `--timeout` seconds is a crash too (a
pathological slowdown). A target starts from its seed corpus
(bench/fuzz/corpus/<target>/, the protocols' documented examples, never
written to) and a working corpus in the session directory, with a dictionary
(bench/fuzz/dict/<target>.dict: the protocol's keywords and field names, and
text that trips parsers: Unicode digits, surrogate escapes, huge numbers). libFuzzer stops at
a crash; this script records it (input, signature, traceback), restarts the
target with that signature listed as known (bench/fuzz/common.py) and goes on
until the target's time is used up, so one session reports every distinct
crash it finds.

Per target it reports executions, executions per second, coverage (libFuzzer's
`cov`: edges of the instrumented Python code, heihei and the multipart
parser), features, corpus size and the crashes, and appends one JSON line per
target to `<results>/fuzz.jsonl` (bench/results unless `--results`; quick runs
go to /tmp/heihei-bench-quick/). A crash input can be replayed without the
fuzzer: `.venv/bin/python bench/fuzz/<target>.py --replay <file>`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FUZZ = BENCH / "fuzz"
TARGETS = ("boss_frames", "jim_frames", "live_frames", "heihei_im", "jsonsafe", "readers")
QUICK_DIR = Path("/tmp/heihei-bench-quick")
#: restarts after crashes, per target (each distinct crash costs one)
MAX_RESTARTS = 25

_DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)")
_PROGRESS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)")
_EXECUTED = re.compile(r"stat::number_of_executed_units: (\d+)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")
_SIGNATURE = re.compile(r"CRASH-SIGNATURE: (.+)")


@dataclass
class Crash:
    signature: str
    input: str
    traceback: str


@dataclass
class TargetResult:
    target: str
    seconds: float = 0.0
    executions: int = 0
    coverage: int = 0
    features: int = 0
    corpus_units: int = 0
    corpus_size: str = ""
    seed_units: int = 0
    runs: int = 0
    crashes: list[Crash] = field(default_factory=list)

    @property
    def exec_per_s(self) -> float:
        return self.executions / self.seconds if self.seconds else 0.0


def _traceback(python: str, target: str, artifact: str, output: str) -> str:
    """The crash's traceback, from replaying its input without the fuzzer (else libFuzzer's words)."""
    if artifact and Path(artifact).is_file():
        replay = subprocess.run([python, str(FUZZ / f"{target}.py"), "--replay", artifact], cwd=ROOT,
                                capture_output=True, text=True, errors="replace", timeout=120)
        text = (replay.stdout + replay.stderr).strip()
        if "Traceback" in text:
            return text[text.index("Traceback"):][-4000:]
    start = output.find("ERROR: libFuzzer")
    return output[start:start + 2000].strip() if start != -1 else output[-2000:]


def run_target(target: str, seconds: float, *, timeout_s: int, max_len: int, session: Path,
               python: str) -> TargetResult:
    seeds = FUZZ / "corpus" / target
    work = session / target / "corpus"
    artifacts = session / target / "artifacts"
    work.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    result = TargetResult(target, seed_units=len(list(seeds.iterdir())) if seeds.is_dir() else 0)
    known: list[str] = []
    deadline = time.monotonic() + seconds
    while result.runs <= MAX_RESTARTS:
        left = int(deadline - time.monotonic())
        if left < 2:
            break
        dictionary = FUZZ / "dict" / f"{target}.dict"
        command = [python, str(FUZZ / f"{target}.py"), str(work), *([str(seeds)] if seeds.is_dir() else []),
                   *([f"-dict={dictionary}"] if dictionary.is_file() else []),
                   f"-max_total_time={left}", f"-timeout={timeout_s}", f"-max_len={max_len}",
                   f"-artifact_prefix={artifacts}/", "-print_final_stats=1", "-close_fd_mask=1"]
        env = dict(os.environ, HEIHEI_FUZZ_KNOWN="\n".join(known), PYTHONHASHSEED="0")
        started = time.monotonic()
        proc = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace", timeout=left + 5 * timeout_s + 60)
        result.seconds += time.monotonic() - started
        result.runs += 1
        output = proc.stdout
        executed = _EXECUTED.findall(output)
        progress = _PROGRESS.findall(output)
        if executed:
            result.executions += int(executed[-1])
        elif progress:
            result.executions += int(progress[-1][0])
        if progress:
            _, cov, ft, units, size = progress[-1]
            result.coverage = max(result.coverage, int(cov))
            result.features = max(result.features, int(ft))
            result.corpus_units, result.corpus_size = int(units), size
        if proc.returncode == 0:
            break
        artifact = (_ARTIFACT.findall(output) or [""])[-1]
        signature = (_SIGNATURE.findall(output) or [""])[-1].strip()
        if not signature:
            signature = "timeout" if "libFuzzer: timeout" in output else \
                "out of memory" if "out-of-memory" in output else f"exit {proc.returncode}"
        result.crashes.append(Crash(signature, artifact, _traceback(python, target, artifact, output)))
        print(f"  {target}: crash {signature} ({artifact})", flush=True)
        if signature in known:
            break  # the target could not step over it (a timeout, a crash outside Python): stop here
        known.append(signature)
    return result


def report(results: list[TargetResult]) -> str:
    lines = [f"{'target':<12} {'time s':>7} {'execs':>11} {'exec/s':>8} {'cov':>5} {'ft':>6} {'corpus':>12} "
             f"{'crashes':>7}"]
    for r in results:
        lines.append(f"{r.target:<12} {r.seconds:>7.0f} {r.executions:>11,} {r.exec_per_s:>8,.0f} {r.coverage:>5} "
                     f"{r.features:>6} {f'{r.corpus_units}/{r.corpus_size}':>12} {len(r.crashes):>7}")
    for r in results:
        for c in r.crashes:
            lines.append(f"\n{r.target}: {c.signature}\n  input: {c.input}\n  " + c.traceback.replace("\n", "\n  "))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180.0, help="fuzzing time per target (default 180)")
    parser.add_argument("--quick", action="store_true", help="15 s per target, results in /tmp/heihei-bench-quick/")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--timeout", type=int, default=2, help="seconds one input may take (default 2)")
    parser.add_argument("--max-len", type=int, default=16384, help="largest input in bytes (default 16384)")
    parser.add_argument("--results", type=Path, default=None, help="where fuzz.jsonl goes (default bench/results)")
    parser.add_argument("--keep", action="store_true", help="keep the session directory (corpora, artifacts)")
    args = parser.parse_args(argv)
    seconds = 15.0 if args.quick else args.seconds
    results_dir = args.results or (QUICK_DIR if args.quick else BENCH / "results")
    results_dir.mkdir(parents=True, exist_ok=True)
    session = Path(tempfile.mkdtemp(prefix="heihei-fuzz-"))
    commit = os.environ.get("BENCH_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    print(f"fuzzing {', '.join(args.targets)} for {seconds:.0f} s each; session {session}", flush=True)
    results = []
    for target in args.targets:
        r = run_target(target, seconds, timeout_s=args.timeout, max_len=args.max_len, session=session,
                       python=sys.executable)
        print(f"  {target}: {r.executions:,} executions in {r.seconds:.0f} s, cov {r.coverage}, "
              f"{len(r.crashes)} crash(es)", flush=True)
        results.append(r)
    print(report(results))
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    with open(results_dir / "fuzz.jsonl", "a") as out:
        for r in results:
            row = {"time": stamp, "commit": commit, "mode": "quick" if args.quick else "full",
                   "seconds_per_target": seconds, **asdict(r), "exec_per_s": round(r.exec_per_s),
                   "crashes": [{"signature": c.signature, "input": c.input} for c in r.crashes]}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    if args.keep or any(r.crashes for r in results):
        print(f"session kept: {session}")
    else:
        shutil.rmtree(session, ignore_errors=True)
    return 1 if any(r.crashes for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
