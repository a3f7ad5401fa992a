"""Shared by the sample participants: a tiny JSON ledger per service, keyed by idempotency key.

Each participant reads the command JSON on stdin, does its work once per idempotency key
(a re-sent command returns the first answer), and prints the result JSON on stdout.
Failure switches for demos and runbooks (environment variables):
  FAIL_STEP=<step>              the action of that step is refused (exit 1)
  FAIL_STEP_MODE=transient      ...or answers "try again" (exit 75) instead
  FAIL_COMPENSATION=<step>      the compensation of that step keeps failing (exit 75)
  SAMPLE_STATE_DIR=<dir>        where the ledgers live (default: .state next to this folder)
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

STATE_DIR = Path(os.environ.get("SAMPLE_STATE_DIR") or Path(__file__).resolve().parent.parent / ".state")


def serve(service: str, handlers: dict[str, Callable[[dict[str, Any], dict[str, Any]], Any]]) -> None:
    """Run the handler named by argv[1] for the command on stdin, once per idempotency key."""
    operation = sys.argv[1] if len(sys.argv) > 1 else ""
    if operation not in handlers:
        sys.exit(f"{service}: unknown operation {operation!r} (expected: {', '.join(handlers)})")
    command = json.load(sys.stdin)
    step = os.environ.get("SAGA_STEP", "")
    phase = os.environ.get("SAGA_PHASE", "action")
    key = os.environ.get("SAGA_IDEMPOTENCY_KEY") or f"{command.get('saga_id')}:{step}:{phase}"
    if phase == "action" and os.environ.get("FAIL_STEP") == step:
        if os.environ.get("FAIL_STEP_MODE") == "transient":
            print(f"{service}: temporarily unavailable (FAIL_STEP={step})", file=sys.stderr)
            sys.exit(75)
        print(f"{service}: refused {operation} (FAIL_STEP={step})", file=sys.stderr)
        sys.exit(1)
    if phase == "compensation" and os.environ.get("FAIL_COMPENSATION") == step:
        print(f"{service}: cannot {operation} right now (FAIL_COMPENSATION={step})", file=sys.stderr)
        sys.exit(75)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    path = STATE_DIR / f"{service}.json"
    with open(STATE_DIR / f"{service}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ledger = json.loads(path.read_text()) if path.exists() else {"done": {}, "records": {}}
        if key not in ledger["done"]:
            ledger["done"][key] = handlers[operation](command, ledger["records"])
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(ledger, indent=1))
            os.replace(tmp, path)
        result = ledger["done"][key]
    json.dump(result, sys.stdout)
