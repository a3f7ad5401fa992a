"""An HTTP participant process whose answers each saga's input plans (worker scale tests and
benchmarks/bench_worker.py): the scripted server of tests/support/participants.py, run on its
own, deciding by the request body instead of a script.

    python -m tests.support.shop [--journal FILE] [--delay SECONDS]

It prints its port on stdout, then serves on 127.0.0.1 until SIGTERM. A call's body carries
the saga's ``plan`` (``{"STEP" | "STEP:compensation": "refuse" | "down" | "flaky N"}``):

- ``refuse``: 422, a definitive refusal;
- ``down``: 503 on every call (transient errors that exhaust the retries);
- ``flaky N``: 503 on the first N calls of that idempotency key, then success;
- anything else (or no plan): success, ``{"step", "phase", "order_id"}``.

Like a real participant it acts once per idempotency key: a key already answered with success
or a refusal is answered the same again without acting (a ``duplicate`` in the journal). The
journal has one JSON line per call: ``{at, key, saga_id, step, phase, outcome, status}`` with
outcome ``done``, ``refused``, ``transient`` or ``duplicate``. ``--delay`` holds every answer
that long (a participant that takes 20 ms).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from tests.support.participants import Behaviour, Call, Participants, Respond


class Shop:
    """The decisions and the journal (thread-safe: the server answers on a thread per connection)."""

    def __init__(self, journal: IO[str] | None, delay: float = 0.0) -> None:
        self.journal = journal
        self.delay = delay
        self.lock = threading.Lock()
        self.given: dict[str, Respond] = {}  # key -> the final answer given (success or refusal)
        self.transient: dict[str, int] = {}  # key -> transient answers given so far

    def decide(self, call: Call) -> Behaviour:
        key = call.key or ""
        with self.lock:
            if key in self.given:
                return self._log(call, "duplicate", self.given[key])
            body: dict[str, Any] = call.body if isinstance(call.body, dict) else {}
            plan: dict[str, Any] = body["plan"] if isinstance(body.get("plan"), dict) else {}
            what = str(plan.get(str(call.step) if call.phase == "action" else f"{call.step}:{call.phase}") or "")
            sent = self.transient.get(key, 0)
            if what == "down" or (what.startswith("flaky ") and sent < int(what.split()[1])):
                self.transient[key] = sent + 1
                return self._log(call, "transient", Respond(503, {"error": "try again"}, delay=self.delay))
            if what == "refuse":
                answer = Respond(422, {"error": f"{call.step} refused for {body.get('order_id')}"}, delay=self.delay)
                outcome = "refused"
            else:
                result = {"step": call.step, "phase": call.phase, "order_id": body.get("order_id")}
                answer, outcome = Respond(200, result, delay=self.delay), "done"
            self.given[key] = answer
            return self._log(call, outcome, answer)

    def _log(self, call: Call, outcome: str, answer: Respond) -> Respond:
        if self.journal is not None:
            entry = {
                "at": time.time(),
                "key": call.key,
                "saga_id": call.saga_id,
                "step": call.step,
                "phase": call.phase,
                "outcome": outcome,
                "status": answer.status,
            }
            self.journal.write(json.dumps(entry) + "\n")
            self.journal.flush()
        return answer


def read_journal(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--journal", type=Path, help="append one JSON line per call here")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every answer takes")
    args = parser.parse_args()
    journal = args.journal.open("a", encoding="utf-8") if args.journal else None
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    server = Participants(decide=Shop(journal, args.delay).decide)
    sys.stdout.write(f"{server.port}\n")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        stopping.wait()
    server.close()
    if journal is not None:
        journal.close()


if __name__ == "__main__":
    main()
