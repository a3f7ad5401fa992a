"""Which definitions already passed the JSON Schema: one empty file per document in
$XDG_CACHE_HOME/sagactl/valid, named by the digest of sagactl's version, the schema and the
document. jsonschema costs ~100 ms to import; a definition run again skips it. A leaf: imports
nothing of sagactl but its version."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def valid_marker(doc: Any, schema_text: str) -> Path | None:
    """Where the cache records that ``doc`` passed the schema ``schema_text`` (None when there
    is no home to cache in)."""
    from sagactl import __version__

    base = os.environ.get("XDG_CACHE_HOME") or (os.path.join(os.path.expanduser("~"), ".cache"))
    if not base or base.startswith("~"):
        return None
    digest = hashlib.sha256()
    for part in (__version__, schema_text, json.dumps(keyed(doc), default=repr)):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return Path(base, "sagactl", "valid", digest.hexdigest())


def keyed(value: Any) -> Any:
    """``value`` with every mapping as its items sorted by key, each key tagged with its type:
    YAML keys need not be strings (``1:``, ``? ``: sorting them crashed), and 1 and "1" must
    not share a digest."""
    if isinstance(value, dict):
        return sorted([f"{type(k).__name__}:{k!r}", keyed(v)] for k, v in value.items())
    if isinstance(value, list):
        return [keyed(v) for v in value]
    return value
