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
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TextIO

from sagactl.codec import escaped
from sagactl.errors import UsageError
from sagactl.models import ACTIVE_STATES, SagaSummary, check_saga_id, shown_id
from sagactl.store.base import SagaReader
from sagactl.tools.inspect import ListRequest, check_list_request, list_sagas

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


# -- selectors: which sagas a bulk command acts on ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Selector:
    """Which sagas a bulk command acts on: saga IDs (typed, or read from stdin with ``-``), or
    the filters of ``list`` (``request``: --stuck, --state, --type, --step, --error, --group,
    --older-than, --since, --until). Not both."""

    ids: tuple[str, ...] = ()
    from_stdin: bool = False
    request: ListRequest = field(default_factory=ListRequest)

    @property
    def filtered(self) -> bool:
        r = self.request
        return bool(
            r.stuck or r.states or r.saga_type or r.older_than or r.since or r.until or r.step or r.error or r.group
        )

    @property
    def typed(self) -> bool:
        """Every saga was named on the command line (no ``-``, no filters)."""
        return bool(self.ids) and not self.from_stdin and not self.filtered

    def check(self) -> None:
        """Refuse a selector that selects nothing or mixes IDs with filters (exit 2)."""
        if self.ids and self.filtered:
            raise UsageError(
                "pass saga IDs (or -) or selectors (--stuck, --state, --type, --step, --error, --group,"
                " --older-than, --since, --until), not both",
                hint="narrow IDs with 'sagactl list --saga-id - [filters] -q | sagactl … -'",
            )
        if not self.ids and not self.filtered:
            raise UsageError(
                "name at least one SAGA_ID (or - for IDs on stdin), or select sagas with --stuck, --state,"
                " --type, --step, --error, --group, --older-than, --since or --until",
                hint="see 'sagactl list --stuck -q'",
            )
        r = self.request
        if r.group and not (r.stuck or r.states or r.saga_type or r.step or r.error or r.since or r.until):
            raise UsageError(
                "--group KEY picks a failure group among the sagas the other selectors pick: pass the ones the"
                " groups were listed with",
                hint="e.g. 'list --stuck --group-by step,error' then '--stuck --group KEY'",
            )
        check_tokens(self.ids)
        check_list_request(r)

    def to_dict(self) -> dict[str, Any]:
        """The selector as given (relative times as typed): part of the job's identity."""
        r = self.request
        found: dict[str, Any] = {
            "saga_ids": list(self.ids),
            "stuck": r.stuck,
            "states": [s.value for s in r.states],
            "type": r.saga_type,
            "step": r.step,
            "error": r.error,
            "group": r.group,
            "older_than": r.older_than,
            "since": r.since,
            "until": r.until,
        }
        return {k: v for k, v in found.items() if v not in (None, False, [])}

    def describe(self) -> str:
        """The selector as command-line text, for transitions and messages."""
        if self.ids:
            shown = " ".join(self.ids[:5]) + (f" (+{len(self.ids) - 5} more)" if len(self.ids) > 5 else "")
            return f"- ({len(self.ids)} IDs from stdin: {shown})" if self.from_stdin else shown
        from shlex import quote

        parts = []
        for key, value in self.to_dict().items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                parts.append(flag)
            elif isinstance(value, list):
                parts.extend(f"--state {v}" for v in value)
            else:
                parts.append(f"{flag} {quote(str(value))}")
        return " ".join(parts)


def select(reader: SagaReader, selector: Selector, now: datetime) -> tuple[list[SagaSummary], list[str]]:
    """The sagas ``selector`` picks, in list order, and the IDs that named none. Without
    ``--stuck`` or ``--state``, filters pick among active sagas: finished ones have nothing
    left to resume, abort or resolve."""
    if selector.ids:
        found: list[SagaSummary] = []
        missing: list[str] = []
        for token in selector.ids:
            saga = reader.summary(resolve_id(reader, token))
            if saga is None:
                missing.append(token)
            elif saga.saga_id not in {s.saga_id for s in found}:
                found.append(saga)
        return found, missing
    request = selector.request
    if not request.stuck and not request.states:
        request = replace(request, states=ACTIVE_STATES)
    listed = list_sagas(reader, replace(request, limit=0), now)  # limit 0: every match, no default cap
    return [row.saga for row in listed.sagas], []
