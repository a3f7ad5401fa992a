#!/usr/bin/env python3
"""CPU per call of the http transport, this checkout beside others, in one process.

    python benchmarks/bench_http_transport.py [--against DIR]... [--calls 1000] [--rounds 8]

Each checkout's HttpTransport (imported from DIR, e.g. `git archive main | tar -x -C DIR`) POSTs
the same request (a small JSON body, the saga headers, an Authorization header) to the no-op
participant of bench_engine.py (its own process, one write per answer) over one kept-alive
connection; then plain http.client with the same headers, for the floor. The checkouts take
turns, ``--calls`` calls a turn, ``--rounds`` turns each; the figure is the least thread CPU
time per call over the turns (the machine is shared: the least is the least disturbed).
"""

from __future__ import annotations

import argparse
import http.client
import importlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_engine import participant  # noqa: E402  (the no-op participant, its own process)

HEADERS = {"Authorization": "Bearer x"}
BODY = {"saga_id": "s-1", "step_name": "charge", "n": 1}


def transport_call(root: Path, url: str) -> Callable[[], Any]:
    """One call of ``root``'s HttpTransport (its sagactl modules imported apart from the others)."""
    for name in [m for m in sys.modules if m == "sagactl" or m.startswith("sagactl.")]:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        http = importlib.import_module("sagactl.transports.http")
        base = importlib.import_module("sagactl.transports.base")
        models = importlib.import_module("sagactl.models")
    finally:
        sys.path.remove(str(root))
    transport = http.HttpTransport("bench", {"url": url, "headers": HEADERS})
    request = base.Request(
        saga_id="s-1",
        step_name="charge",
        phase=models.Phase.ACTION,
        idempotency_key="s-1:charge:action",
        spec={"method": "POST", "path": "/charge"},
        body=BODY,
        timeout=5.0,
    )

    def call() -> Any:
        reply = transport.call(request)
        assert reply.status.value == "ok", reply
        return reply

    return call


def plain_call(url: str) -> Callable[[], Any]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port))
    headers = {
        **HEADERS,
        "Content-Type": "application/json",
        "Idempotency-Key": "s-1:charge:action",
        "X-Saga-Id": "s-1",
        "X-Saga-Step": "charge",
        "X-Saga-Phase": "action",
    }

    def call() -> Any:
        conn.request("POST", "/charge", body=json.dumps(BODY).encode(), headers=headers)
        return json.loads(conn.getresponse().read())

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", metavar="DIR", action="append", default=[], help="another checkout")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    with participant() as url:
        calls = {str(Path(d).resolve()): transport_call(Path(d).resolve(), url) for d in args.against}
        calls["this checkout"] = transport_call(HERE.parent, url)
        calls["http.client (floor)"] = plain_call(url)
        best = dict.fromkeys(calls, float("inf"))
        for call in calls.values():
            for _ in range(200):  # warm up: the connection, the caches
                call()
        for _ in range(args.rounds):
            for name, call in calls.items():
                started = time.thread_time()
                for _ in range(args.calls):
                    call()
                best[name] = min(best[name], (time.thread_time() - started) / args.calls * 1e6)
    for name, least in best.items():
        print(f"{name}: {least:.0f} µs of CPU per call")


if __name__ == "__main__":
    main()
