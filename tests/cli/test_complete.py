"""Shell completion as a shell gets it: bash sources completions/sagactl.bash and asks, the way
Tab does, for saga IDs by prefix (bounded), the step names of the saga on the line and the
context names of sagactl.yaml; a completion that cannot be answered prints nothing."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sagactl.models import SagaRecord, SagaState, StepRecord, Transition
from sagactl.store import open_store

ROOT = Path(__file__).parent.parent.parent
T = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a shell whose `sagactl` is this checkout's, with a saga log of 61
    sagas 'ord-100'..'ord-160' and one 'other-1', and a sagactl.yaml with two contexts."""
    home = tmp_path_factory.mktemp("complete")
    bin_dir = home / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "sagactl"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m sagactl "$@"\n')
    shim.chmod(0o755)
    dsn = f"sqlite:///{home / 'log.db'}"
    store = open_store(dsn)
    for saga_id in [*(f"ord-{n}" for n in range(100, 161)), "other-1"]:
        saga = SagaRecord(
            saga_id=saga_id,
            saga_type="Order",
            state=SagaState.COMPENSATING,
            data={},
            steps=[StepRecord("reserve_inventory"), StepRecord("charge_payment"), StepRecord("create_shipment")],
            definition={},
            created_at=T,
            updated_at=T,
        )
        store.create(saga, [Transition(saga_id, None, None, "started", T)])
    store.close()
    (home / "sagactl.yaml").write_text("contexts:\n  staging: {}\n  prod-eu: {}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGACTL_", "_SAGACTL", "COMP_"))}
    return {
        **env,
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "SAGACTL_DSN": dsn,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "xdg"),
    }


def complete(shell: dict[str, str], line: str, **extra: str) -> list[str]:
    """What Tab at the end of ``line`` offers in bash with completions/sagactl.bash sourced."""
    words = shlex.split(line) + ([""] if line.endswith(" ") else [])
    script = (
        f"source {shlex.quote(str(ROOT / 'completions' / 'sagactl.bash'))}\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_sagactl_completion sagactl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        env={**shell, **extra},
        cwd=shell["HOME"],
        timeout=60,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return [line for line in done.stdout.splitlines() if line]


def test_commands_complete(shell: dict[str, str]) -> None:
    assert complete(shell, "sagactl sch") == ["schema"]


@pytest.mark.slow
def test_saga_ids_complete_by_prefix_at_most_50(shell: dict[str, str]) -> None:
    assert complete(shell, "sagactl show ord-15") == [f"ord-15{n}" for n in range(10)]
    many = complete(shell, "sagactl resume ord-")
    assert len(many) == 50 and many == sorted(many) and many[0] == "ord-100"
    assert complete(shell, "sagactl resolve nothing-") == []


def test_step_names_of_the_saga_on_the_line_complete(shell: dict[str, str]) -> None:
    assert complete(shell, "sagactl resolve ord-101 --step ") == [
        "reserve_inventory",
        "charge_payment",
        "create_shipment",
    ]
    assert complete(shell, "sagactl resolve --reason done ord-101 --step c") == [
        "charge_payment",
        "create_shipment",
    ]


def test_context_names_complete(shell: dict[str, str]) -> None:
    assert complete(shell, "sagactl doctor --context pr") == ["prod-eu"]


def test_a_completion_that_cannot_be_answered_is_silent(shell: dict[str, str], closed_port: int) -> None:
    """An unreachable database, a broken config: nothing offered, nothing on stderr, no wait."""
    unreachable = f"postgresql://ops:pw@127.0.0.1:{closed_port}/orders"
    assert complete(shell, "sagactl show ord-1", SAGACTL_DSN=unreachable) == []
    assert complete(shell, "sagactl list --context ", SAGACTL_CONFIG="/no/such/sagactl.yaml") == []
