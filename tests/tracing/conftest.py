"""What sagactl.tracing warns, caught at its logger: a CLI test run before in the same process
may have pointed the ``sagactl`` logger at a stream of its own (propagation off), which
pytest's caplog would never see."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


class Caught(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def warnings(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= logging.WARNING]


@pytest.fixture
def tracing_log() -> Iterator[Caught]:
    """Every record of the ``sagactl.tracing`` logger while the test runs (and only here)."""
    logger = logging.getLogger("sagactl.tracing")
    caught = Caught()
    before = (logger.level, logger.propagate)
    logger.addHandler(caught)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield caught
    finally:
        logger.removeHandler(caught)
        logger.setLevel(before[0])
        logger.propagate = before[1]
