"""Saga IDs as people type them, and the selectors commands that act on many sagas share with
``list`` (DESIGN section 7), resolved in one place: ``show``, ``list --saga-id``, ``resume``,
``abort``, ``resolve`` (and ``rerun``) take them all from here.

- A unique prefix of a saga ID names that saga; an exact ID always wins over longer ones it
  is a prefix of. An ambiguous prefix is a usage error (exit 2) listing the first
  candidates; one that names nothing is left as typed, so the command's own "not found"
  message (with what is wrong with the ID, if anything) is what the operator sees.
- ``-`` reads IDs from stdin, one per line (blank lines ignored); nothing there is "no IDs
  given" (exit 2), never "every saga".
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import TextIO

from sagactl.codec import escaped
from sagactl.errors import UsageError
from sagactl.models import check_saga_id, shown_id
from sagactl.store.base import SagaReader

STDIN = "-"
MAX_CANDIDATES = 10  # an ambiguous prefix names at most this many of the sagas it matches


class AmbiguousIdError(UsageError):
    """A saga ID prefix that matches more than one saga (exit 2)."""

    def __init__(self, prefix: str, candidates: Sequence[str]) -> None:
        shown = ", ".join(shown_id(c) for c in candidates[:MAX_CANDIDATES])
        more = ", …" if len(candidates) > MAX_CANDIDATES else ""
        count = f"{MAX_CANDIDATES}+" if len(candidates) > MAX_CANDIDATES else str(len(candidates))
        super().__init__(
            f"saga ID prefix '{escaped(prefix)}' is ambiguous: it matches {count} sagas ({shown}{more})",
            hint="type more of the ID",
        )
        self.prefix = prefix
        self.candidates = list(candidates)


def read_id_lines(stream: TextIO | None = None) -> list[str]:
    """Saga IDs from ``stream`` (stdin), one per line, surrounding whitespace and blank lines
    ignored, in order, each once. A terminal (nothing piped) or nothing but blank lines is a
    UsageError: an empty pipe never turns into "every saga" nor into a run that does nothing."""
    stream = sys.stdin if stream is None else stream
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):
        interactive = False
    if interactive:
        raise UsageError("- reads saga IDs from stdin, but stdin is a terminal", hint="pipe IDs in, one per line")
    try:
        text = stream.read()
    except UnicodeDecodeError as exc:
        raise UsageError(f"saga IDs on stdin are not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    ids = list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
    if not ids:
        raise UsageError("no IDs given: stdin held no saga IDs", hint="pipe one saga ID per line, e.g. from 'list -q'")
    return ids


def expand_stdin(tokens: Sequence[str], stdin: TextIO | None = None) -> tuple[list[str], bool]:
    """The ID arguments with ``-`` replaced by the IDs read from stdin (read once, however
    often ``-`` is given), and whether stdin was read."""
    if STDIN not in tokens:
        return list(tokens), False
    read = read_id_lines(stdin)
    expanded: list[str] = []
    for token in tokens:
        if token == STDIN:
            expanded.extend(read)
            read = []
        else:
            expanded.append(token)
    return list(dict.fromkeys(expanded)), True


def check_tokens(tokens: Iterable[str]) -> None:
    """Refuse, before any store is opened, an ID no store can hold (empty, not UTF-8)."""
    for token in tokens:
        check_saga_id(token, lookup=True)


def resolve_id(reader: SagaReader, token: str) -> str:
    """The saga ID ``token`` names: itself when a saga has exactly that ID, else the one saga
    whose ID starts with it; unchanged when none does (the caller reports it not found).
    One index range scan. AmbiguousIdError when several start with it."""
    found = reader.ids_with_prefix(token, MAX_CANDIDATES + 1)
    if not found:
        return token
    if found[0] == token or len(found) == 1:
        return found[0]
    raise AmbiguousIdError(token, found)


def resolve_ids(reader: SagaReader, tokens: Iterable[str]) -> list[str]:
    """``resolve_id`` of each token, in order, each saga once."""
    return list(dict.fromkeys(resolve_id(reader, token) for token in tokens))
