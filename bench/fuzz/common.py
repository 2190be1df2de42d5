"""
What every fuzz target shares: atheris set-up, the crash rule, and known-crash signatures.

A target is a script with a `check(data: bytes)` that feeds one input to one
parser and `REFUSALS`, the exceptions that parser documents as its refusal
(`FrameError`, `BadJSON`, ...). Anything else escaping `check` is a crash;
libFuzzer's `-timeout` turns a pathological slowdown into one too.

libFuzzer stops at the first crash. So that one run can report several
defects, the runner (bench/fuzz.py) passes the signatures of the crashes it
has already seen in `HEIHEI_FUZZ_KNOWN` (one per line): an exception whose
signature is listed is treated as a refusal, and the fuzzer goes on looking
for others. A signature is the exception's type and the innermost frame of
heihei's code that raised it ("ValueError heihei/heihei/im.py:128").
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Callable

import atheris

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere: heihei and bench importable
    sys.path.insert(0, str(ROOT))

#: the code whose coverage guides the fuzzer (pure-Python libraries the parsers call included)
INSTRUMENTED = ["heihei", "multipart"]


def signature(error: BaseException) -> str:
    """`<type> <file>:<line>` of the innermost frame in heihei (else the innermost frame)."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "/heihei/" in f.filename and "/bench/" not in f.filename] or frames
    where = ours[-1] if ours else None
    if where is None:
        return type(error).__name__
    path = where.filename
    if str(ROOT) in path:
        path = os.path.relpath(path, ROOT)
    return f"{type(error).__name__} {path}:{where.lineno}"


def known_signatures() -> set[str]:
    return {line.strip() for line in os.environ.get("HEIHEI_FUZZ_KNOWN", "").splitlines() if line.strip()}


def fuzz(check: Callable[[bytes], None], refusals: tuple[type[BaseException], ...]) -> None:
    """Run `check` under libFuzzer with sys.argv's options (corpus directories, -max_total_time, ...)."""
    known = known_signatures()

    def one_input(data: bytes) -> None:
        try:
            check(data)
        except refusals:
            pass
        except Exception as e:
            if signature(e) in known:
                return
            print(f"CRASH-SIGNATURE: {signature(e)}", file=sys.stderr, flush=True)
            raise

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


def replay(check: Callable[[bytes], None], refusals: tuple[type[BaseException], ...], paths: list[str]) -> int:
    """Feed saved inputs (a crash artifact, a corpus) to `check` without the fuzzer; 1 if any crashed."""
    failed = 0
    for name in paths:
        files = sorted(Path(name).iterdir()) if Path(name).is_dir() else [Path(name)]
        for path in files:
            try:
                check(path.read_bytes())
            except refusals:
                pass
            except Exception as e:
                failed = 1
                print(f"{path}: {signature(e)}")
                traceback.print_exc()
    return failed


def main(check: Callable[[bytes], None], refusals: tuple[type[BaseException], ...]) -> None:
    """`target.py --replay FILE...` replays inputs; anything else is libFuzzer's command line."""
    if len(sys.argv) > 1 and sys.argv[1] == "--replay":
        sys.exit(replay(check, refusals, sys.argv[2:]))
    fuzz(check, refusals)
