"""Masking secrets in large texts (issue 8, item 7): ``mask_secrets`` and ``mask_value`` on
250 KB bodies, this checkout against the masking of commit 457f799 (loaded with ``git show``).

The old patterns backtracked quadratically on long runs of scheme characters (letters,
digits, + . -): one 250 KB message body cost ``dlq list`` about 33 s of CPU. Each body is
masked ``--rounds`` times by the current code (the minimum is reported) and once by the old
code, whose run is abandoned after ``--old-timeout`` seconds (it runs in a child process).

    python benchmarks/bench_masking.py [--size 250000] [--rounds 5] [--old-timeout 60] [--no-old]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import string
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OLD_COMMIT = "457f799"
ENV = {"BANK_API_TOKEN": "s3cr3t-value", "HOME": "/root"}


def bodies(size: int) -> dict[str, str]:
    """The texts masked: what message bodies and participant errors look like, and the
    shapes that cost most (long runs, many candidate words)."""
    rnd = random.Random(7)
    record = {
        "saga_id": "7f3c",
        "step_name": "charge",
        "token_type": "bearer",
        "note": "password: must be rotated",
        "callback": "https://api.example.com/v1/orders?page=2",
    }
    leaky = {**record, "password": "hunter2", "dsn": "postgresql://u:pw@db/x"}
    words = " ".join("".join(rnd.choices(string.ascii_lowercase, k=rnd.randint(1, 10))) for _ in range(size // 5))
    return {
        "hex": "".join(rnd.choices("0123456789abcdef", k=size)),
        "letters": "a" * size,
        "words": words[:size],
        "json": json.dumps([record] * (size // len(json.dumps(record)) + 1))[:size],
        "json with secrets": json.dumps([leaky] * (size // 150))[:size],
        "urls": ("see http://user:pw@host/path and https://api.example.com/x?y=1 " * (size // 60))[:size],
        "bearer words": ("Bearer " * (size // 7))[:size],
    }  # fmt: skip


def old_masking() -> types.ModuleType:
    """sagactl/masking.py as it was at OLD_COMMIT, as a module."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:sagactl/masking.py"], capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType("old_masking")
    exec(compile(source, f"{OLD_COMMIT}:sagactl/masking.py", "exec"), module.__dict__)
    return module


def cpu_seconds(work: Callable[[], Any], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def _old_child(kind: str, size: int, queue: Any) -> None:
    module = old_masking()
    text = bodies(size)[kind]
    queue.put(
        (
            cpu_seconds(lambda: module.mask_secrets(text, ENV), 1),
            cpu_seconds(lambda: module.mask_value({"body": text}, ENV), 1),
        )
    )


def old_timings(kind: str, size: int, timeout: float) -> tuple[float, float] | None:
    """(mask_secrets, mask_value) CPU seconds of the old code, None when it outlasts ``timeout``."""
    queue: Any = multiprocessing.Queue()
    child = multiprocessing.Process(target=_old_child, args=(kind, size, queue))
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()
        return None
    result: tuple[float, float] = queue.get()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=250_000, help="characters per body")
    parser.add_argument("--rounds", type=int, default=5, help="runs of the current code per body (minimum kept)")
    parser.add_argument("--old-timeout", type=float, default=60.0, help="seconds before an old run is abandoned")
    parser.add_argument("--no-old", action="store_true", help="do not run the old code")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from sagactl.masking import Masker

    masker = Masker(env=ENV)
    print(f"# masking {args.size // 1000} KB bodies (CPU ms; current: min of {args.rounds}; old: one run)\n")
    print("| body | mask_secrets now | mask_value now | mask_secrets at 457f799 | mask_value at 457f799 |")
    print("|---|---:|---:|---:|---:|")
    for kind, text in bodies(args.size).items():
        now_text = cpu_seconds(lambda text=text: masker.text(text), args.rounds)
        now_value = cpu_seconds(lambda text=text: masker.value({"body": text}), args.rounds)
        old = None if args.no_old else old_timings(kind, args.size, args.old_timeout)
        if args.no_old:
            then = ("", "")
        elif old is None:
            then = (f"> {args.old_timeout:g} s (abandoned)", "")
        else:
            then = (f"{old[0] * 1000:.1f}", f"{old[1] * 1000:.1f}")
        print(f"| {kind} | {now_text * 1000:.1f} | {now_value * 1000:.1f} | {then[0]} | {then[1]} |", flush=True)


if __name__ == "__main__":
    main()
