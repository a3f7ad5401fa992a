"""The worker's metrics are the ones README "Workers" documents, by name and type."""

from __future__ import annotations

import re
from pathlib import Path

from sagactl.metrics import WorkerMetrics

README = Path(__file__).parent.parent / "README.md"


def test_readme_documents_every_worker_metric() -> None:
    section = README.read_text().split("## Workers", 1)[1].split("\n## ", 1)[0]
    documented = dict(re.findall(r"^\| `(sagactl_worker_\w+)` \| (\w+) \|", section, re.MULTILINE))
    exposed = {
        family.name + ("_total" if family.type == "counter" else ""): family.type
        for family in WorkerMetrics().registry.collect()
    }
    assert documented == exposed
