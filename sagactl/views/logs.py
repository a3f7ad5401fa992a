"""Transition logging on stderr: text or JSON, secrets masked. Loaded when a command runs,
never for --help."""

from __future__ import annotations

import logging
import sys

from sagactl.masking import mask_secrets
from sagactl.views.output import json_safe, terminal_safe


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from sagactl.codec import to_json
        from sagactl.models import iso, utcnow

        entry = {"ts": iso(utcnow()), "level": record.levelname.lower(), "message": record.getMessage()}
        for key in ("saga_id", "step_name", "old_state", "new_state", "detail"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        return json_safe(mask_secrets(to_json(entry, indent=None)))


class TextLogFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().formatMessage(record))  # the line; a traceback follows as is

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname
        record.levelname = level.lower()  # "sagactl: warning: …", like every other warning line
        try:
            return mask_secrets(super().format(record))
        finally:
            record.levelname = level


class WarningFormatter(logging.Formatter):
    """``sagactl: warning: ...`` (the level in lowercase, as every sagactl message line)."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(f"sagactl: {record.levelname.lower()}: {record.getMessage()}")


def configure_logging(verbose: bool, json_lines: bool) -> None:
    """WARNING and up as "sagactl: warning: ..." lines; with ``verbose`` or ``json_lines``
    every committed transition too (INFO), as text or as one JSON object per line."""
    root = logging.getLogger("sagactl")
    root.handlers.clear()
    root.propagate = False
    if not verbose and not json_lines:
        root.setLevel(logging.WARNING)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(WarningFormatter())
        root.addHandler(handler)
        return
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(TextLogFormatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
