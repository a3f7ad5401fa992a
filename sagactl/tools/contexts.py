"""`sagactl config`: the contexts of sagactl.yaml, switching the current one in place, and the
file as data with its secrets masked (kubectl's get-contexts, use-context, view).

The file is edited as text, one line: ``current_context: NAME`` replaces the line that sets
it, or goes in just above ``contexts:`` (else at the end); comments, order and everything else
stay byte for byte. The result is read back before it replaces the file (atomically, with
the file's permissions), so an edit that would not parse is never written.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagactl.config import _load_config, find_config
from sagactl.errors import UsageError
from sagactl.masking import mask_dsn, mask_value

_CURRENT_LINE = re.compile(r"^current_context[ \t]*:.*$", re.MULTILINE)
_CONTEXTS_LINE = re.compile(r"^contexts[ \t]*:", re.MULTILINE)
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@/-]*$")  # written as a plain YAML scalar


@dataclass(frozen=True, slots=True)
class Context:
    """One context as ``config contexts`` lists it (its DSN password masked)."""

    name: str
    current: bool
    dsn: str | None
    table: str | None
    region: str | None
    endpoint_url: str | None
    preset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "current": self.current,
            "dsn": self.dsn,
            "table": self.table,
            "region": self.region,
            "endpoint_url": self.endpoint_url,
            "preset": self.preset,
        }


@dataclass(frozen=True, slots=True)
class Contexts:
    path: Path | None
    current: str | None  # the context in effect: --context / SAGACTL_CONTEXT, else the file's
    contexts: list[Context] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": str(self.path) if self.path else None,
            "current_context": self.current,
            "contexts": [c.to_dict() for c in self.contexts],
        }


def _config(explicit: str | None, env: Mapping[str, str]) -> tuple[Path | None, dict[str, Any], dict[str, Any]]:
    path = find_config(explicit or env.get("SAGACTL_CONFIG") or None, env)
    if path is None:
        return None, {}, {}
    doc, _store, _aws, contexts = _load_config(path)
    return path, doc, contexts


def list_contexts(explicit: str | None, context: str | None, env: Mapping[str, str]) -> Contexts:
    """Every context of the config file, the one in effect marked (``context``: the
    --context / SAGACTL_CONTEXT given, which wins over the file's current_context)."""
    path, doc, contexts = _config(explicit, env)
    current = context or env.get("SAGACTL_CONTEXT") or doc.get("current_context")
    listed = []
    for name, ctx in contexts.items():
        store = (ctx or {}).get("store") or {}
        aws = (ctx or {}).get("aws") or {}
        dsn = store.get("dsn")
        listed.append(
            Context(
                name=str(name),
                current=name == current,
                dsn=mask_dsn(str(dsn)) if dsn else None,
                table=store.get("table"),
                region=aws.get("region"),
                endpoint_url=mask_dsn(str(aws["endpoint_url"])) if aws.get("endpoint_url") else None,
                preset=store.get("preset"),
            )
        )
    return Contexts(path, str(current) if current else None, listed)


def use_context(name: str, explicit: str | None, env: Mapping[str, str]) -> Path:
    """Make ``name`` the config file's current_context, changing nothing else; the file's path.
    UsageError (exit 2) without a config file, or for a name the file does not define (the
    message lists the names it does)."""
    path, _doc, contexts = _config(explicit, env)
    if path is None:
        raise UsageError(
            "no config file to write current_context into",
            hint="create ./sagactl.yaml (see sample-configs/sagactl.yaml) or pass --config",
        )
    if name not in contexts:
        known = ", ".join(sorted(map(str, contexts))) or "none defined"
        raise UsageError(f"context '{name}' not found in {path} (known: {known})")
    line = f"current_context: {name if _NAME.match(name) else _quoted(name)}"
    text = path.read_text("utf-8")
    if _CURRENT_LINE.search(text):
        edited = _CURRENT_LINE.sub(line.replace("\\", "\\\\"), text, count=1)
    elif (found := _CONTEXTS_LINE.search(text)) is not None:
        edited = text[: found.start()] + line + "\n" + text[found.start() :]
    else:
        edited = text + ("" if text.endswith("\n") or not text else "\n") + line + "\n"
    _replace(path, edited, name)
    return path


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _replace(path: Path, text: str, name: str) -> None:
    """Write ``text`` over ``path`` atomically once it reads back with ``name`` current."""
    directory = path.resolve().parent
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, path.stat().st_mode & 0o7777)
        try:
            doc = _load_config(Path(temporary))[0]
        except UsageError as exc:
            raise UsageError(
                f"cannot set current_context in {path} by editing one line ({exc.message})",
                hint=f"add 'current_context: {name}' to it by hand",
            ) from None
        if doc.get("current_context") != name:
            raise UsageError(
                f"cannot set current_context in {path} by editing one line",
                hint=f"add 'current_context: {name}' to it by hand",
            )
        os.replace(temporary, path.resolve())
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def view(explicit: str | None, env: Mapping[str, str]) -> tuple[Path | None, dict[str, Any]]:
    """The config file as data, every DSN's password and every other secret masked."""
    path, doc, _contexts = _config(explicit, env)
    return path, _masked(doc)


def _masked(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, str) and key in ("dsn", "endpoint_url"):
        return mask_dsn(value)
    return mask_value(value)
