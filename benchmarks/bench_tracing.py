#!/usr/bin/env python3
"""Per-step cost of tracing (issue 21): the same 20-step saga on SQLite against a no-op HTTP
participant, with tracing off (NOOP: nothing of OpenTelemetry loaded) and on (a span per
attempt and per saga, W3C context to the participant, the SDK's batch span processor sending
OTLP/HTTP protobuf to a receiver on 127.0.0.1), run round-robin in one process.

    python benchmarks/bench_tracing.py [--runs 30] [--steps 20] [--against /path/to/main]

Reports per variant the engine process's CPU time per step (its own threads: the batch
exporter's included; the participant and the receiver run in processes of their own) and
wall time per step, medians over the runs, and the spans the receiver decoded. Also prints
the load average, since the machine is shared.

``--against DIR`` also times tracing off in this checkout and in DIR (a worktree of main,
before tracing existed) side by side: batches of runs in child processes, alternating, so the
cost of a step with tracing off can be compared with what it was.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_engine import definition, participant  # noqa: E402

from sagactl.definitions.model import SagaDefinition  # noqa: E402
from sagactl.engine.control import Engine  # noqa: E402
from sagactl.store import open_store  # noqa: E402
from sagactl.tracing import NOOP, Tracing  # noqa: E402
from sagactl.tracing.start import open_tracing  # noqa: E402
from sagactl.transports import Transport, open_transport  # noqa: E402

RECEIVER = """
import sys, threading
from tests.support.otlp import otlp_http
with otlp_http() as collector:
    print(collector.endpoint, flush=True)
    for line in sys.stdin:  # "count": how many spans so far
        print(len(collector.received()), flush=True)
"""


@contextmanager
def receiver() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """An OTLP/HTTP receiver (tests.support.otlp) in its own process: (endpoint, process)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", RECEIVER],
        cwd=HERE.parent,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip(), proc
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=10)


def spans_received(proc: subprocess.Popen[str]) -> int:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("count\n")
    proc.stdin.flush()
    return int(proc.stdout.readline())


def one_run(engine: Engine, defn: SagaDefinition) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one saga driven to its end."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = engine.run(defn, {"order_id": f"o-{random.random()}"})
    assert result.saga.state.value == "completed", result.saga.last_error
    return time.process_time() - cpu, time.perf_counter() - wall


CHILD = """
import os, random, sys, tempfile, time
sys.path.insert(0, {bench!r})
from bench_engine import definition
from sagactl.engine.control import Engine
from sagactl.store import open_store
from sagactl.transports import open_transport
defn = definition({steps})
env = {{**os.environ, "BENCH_URL": {url!r}}}
with tempfile.TemporaryDirectory() as tmp:
    store = open_store(f"sqlite:///{{tmp}}/log.db")
    engine = Engine(store=store, transport_factory=lambda d, n: open_transport(d.endpoints[n], d.base_dir, env),
                    env=env, rng=random.Random(1))
    for run in range({warmup} + {runs}):
        cpu, wall = time.process_time(), time.perf_counter()
        engine.run(defn, {{"order_id": f"o-{{run}}"}})
        if run >= {warmup}:
            print(time.process_time() - cpu, time.perf_counter() - wall, flush=True)
    store.close()
"""


def against(other: str, url: str, steps: int, rounds: int, per_round: int) -> dict[str, list[tuple[float, float]]]:
    """Tracing off in this checkout and in ``other``, batches of runs in child processes, alternating."""
    found: dict[str, list[tuple[float, float]]] = {"off, this checkout": [], f"off, {other}": []}
    code = CHILD.format(bench=str(HERE), steps=steps, url=url, warmup=2, runs=per_round)
    for _ in range(rounds):
        for name, root in zip(found, (str(HERE.parent), other), strict=True):
            env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
            env["PYTHONPATH"] = root
            done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            found[name] += [(float(a), float(b)) for a, b in (line.split() for line in done.stdout.splitlines())]
    return found


def report(samples: dict[str, list[tuple[float, float]]], steps: int) -> None:
    print(f"{'tracing':40} {'CPU ms/step':>12} {'wall ms/step':>13}")
    base = None
    for name, values in samples.items():
        cpu = statistics.median(v[0] for v in values) / steps * 1000
        wall = statistics.median(v[1] for v in values) / steps * 1000
        extra = "" if base is None else f"   ({cpu - base:+.3f} ms CPU a step)"
        base = cpu if base is None else base
        print(f"{name:40} {cpu:12.3f} {wall:13.3f}{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--against", metavar="DIR", help="another checkout: tracing off there and here, side by side")
    opts = parser.parse_args()
    defn = definition(opts.steps)
    compared: dict[str, list[tuple[float, float]]] = {}
    with participant() as url, receiver() as (endpoint, otlp), tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "BENCH_URL": url}

        def factory(d: SagaDefinition, name: str) -> Transport:
            return open_transport(d.endpoints[name], d.base_dir, env)

        traced = open_tracing(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
        assert traced.enabled
        variants: dict[str, Tracing] = {"off": NOOP, "on (batch, OTLP/HTTP)": traced}
        stores = {name: open_store(f"sqlite:///{tmp}/{n}.db") for n, name in enumerate(variants)}
        engines = {
            name: Engine(store=stores[name], transport_factory=factory, env=env, rng=random.Random(1), tracer=tracer)
            for name, tracer in variants.items()
        }
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for run in range(opts.warmup + opts.runs):
            for name, engine in engines.items():  # round-robin: drift hits both alike
                figures = one_run(engine, defn)
                if run >= opts.warmup:
                    samples[name].append(figures)
        started = time.monotonic()
        traced.close(5.0)
        flushed = time.monotonic() - started
        time.sleep(0.5)
        received = spans_received(otlp)
        for store in stores.values():
            store.close()
        if opts.against:
            compared = against(opts.against, url, opts.steps, rounds=6, per_round=max(1, opts.runs // 6))
    expected = (opts.warmup + opts.runs) * (opts.steps + 1)
    load = os.getloadavg()
    print(f"{opts.steps}-step saga, {opts.runs} runs each (after {opts.warmup} warm-up), SQLite, no-op participant")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    report(samples, opts.steps)
    print(f"spans received over OTLP: {received} of {expected} (flush at close: {flushed:.2f}s)")
    if compared:
        print(f"\ntracing off, this checkout and {opts.against} (child processes, alternating batches)")
        report(compared, opts.steps)


if __name__ == "__main__":
    main()
