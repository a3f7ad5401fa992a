"""The files sample-configs/ ships: what git tracks there, so that a user's own definitions
beside them (an order-v2.yaml being tried out) change no test. Outside a git checkout (an
unpacked sdist) every file there counts."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample-configs"


def shipped(pattern: str = "*.yaml") -> list[Path]:
    """The shipped files of sample-configs/ matching ``pattern`` (``**/*.yaml``: below it too)."""
    found = sorted(SAMPLES.glob(pattern))
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", "sample-configs"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout.decode("utf-8")
    except (OSError, subprocess.SubprocessError):
        return found
    tracked = {ROOT / name for name in listed.split("\0") if name}
    return [path for path in found if path in tracked] if tracked else found
