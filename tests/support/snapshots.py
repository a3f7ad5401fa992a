"""Snapshot files of terminal renderings: ``assert_snapshot("name", text)`` compares ``text``
with tests/snapshots/name.txt. After a deliberate change of a rendering, rewrite the files with
``SAGACTL_UPDATE_SNAPSHOTS=1 python -m pytest tests/...`` and review the diff."""

from __future__ import annotations

import os
from pathlib import Path

SNAPSHOTS = Path(__file__).parent.parent / "snapshots"


def assert_snapshot(name: str, text: str) -> None:
    """``text`` (trailing spaces on each line aside, which rich pads with) is the snapshot."""
    text = "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("SAGACTL_UPDATE_SNAPSHOTS"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}: run with SAGACTL_UPDATE_SNAPSHOTS=1 and review it"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{path.name} differs (rewrite with SAGACTL_UPDATE_SNAPSHOTS=1 if deliberate):\n{text}"
