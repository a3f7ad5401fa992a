"""``${input.x}``, ``${steps.s.result.y}``, ``${saga_id}``, ``${env.X}``, ``${env.X:-default}``.

A string that is exactly one placeholder keeps the JSON type of what it names; inside a
longer string the value is stringified (strings as is, everything else as compact JSON).
``$${`` writes a literal ``${``. No expressions, no code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sagactl.codec import compact_json
from sagactl.errors import UsageError

PLACEHOLDER = re.compile(r"(?<!\$)\$\{([^}]*)\}")
_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}")  # an escape or a placeholder, left to right
ROOTS = ("input", "steps", "saga_id", "env")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed placeholder: root plus path. For steps: ``step`` and the path after result."""

    text: str
    root: str
    path: tuple[str, ...] = ()
    step: str | None = None
    env_default: str | None = None


class PlaceholderError(ValueError):
    """A placeholder that cannot be parsed; the message says what is expected."""


def parse(expr: str) -> Reference:
    """Parse the text between ``${`` and ``}``."""
    text = expr.strip()
    if text == "saga_id":
        return Reference(text=expr, root="saga_id")
    root, dot, rest = text.partition(".")
    if dot and not rest and root in ("input", "steps"):
        whole = "${input}" if root == "input" else "${steps.STEP_NAME.result}"
        raise PlaceholderError(f"'${{{expr}}}': nothing after '{root}.' (write {whole} or name a field)")
    if root == "saga_id":
        raise PlaceholderError(f"'${{{expr}}}': saga_id is a string without fields (write ${{saga_id}})")
    if root == "env":
        name, sep, default = rest.partition(":-")
        if not _ENV_NAME.match(name):
            raise PlaceholderError(f"'${{{expr}}}': env needs a variable name, e.g. ${{env.API_URL}}")
        return Reference(text=expr, root="env", path=(name,), env_default=default if sep else None)
    if root == "input":
        return Reference(text=expr, root="input", path=_split(rest, expr))
    if root == "steps":
        parts = _split(rest, expr)
        if len(parts) < 2 or parts[1] != "result":
            raise PlaceholderError(
                f"'${{{expr}}}': use ${{steps.STEP_NAME.result}} or ${{steps.STEP_NAME.result.PATH}}"
            )
        return Reference(text=expr, root="steps", step=parts[0], path=parts[2:])
    raise PlaceholderError(f"'${{{expr}}}': unknown root '{root}' (expected one of: {', '.join(ROOTS)})")


def _split(rest: str, expr: str) -> tuple[str, ...]:
    if not rest:
        return ()
    parts = tuple(rest.replace("[", ".").replace("]", "").split("."))
    if any(p == "" for p in parts):
        raise PlaceholderError(f"'${{{expr}}}': empty path segment")
    return parts


def references(value: Any) -> Iterator[tuple[tuple[str | int, ...], str, int]]:
    """Every ``(location, placeholder text, offset in its string)`` inside a JSON-like value."""
    yield from _walk(value, ())


def _walk(value: Any, where: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str, int]]:
    if isinstance(value, str):
        for match in PLACEHOLDER.finditer(value):
            yield where, match.group(1), match.start()
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*where, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*where, index))


@dataclass(frozen=True, slots=True)
class Context:
    """What placeholders resolve against."""

    saga_id: str
    input: Any
    results: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)


class MissingValueError(UsageError):
    """A placeholder names input or environment that is not there."""


_MISSING = object()


def lookup(value: Any, path: tuple[str, ...]) -> Any:
    """Follow a dotted path through dicts and lists; ``_MISSING`` if it leads nowhere."""
    for part in path:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def value_of(ref: Reference, ctx: Context) -> Any:
    """The value a reference names. Missing input/env raise; a missing step result path is null."""
    if ref.root == "saga_id":
        return ctx.saga_id
    if ref.root == "env":
        name = ref.path[0]
        if name in ctx.env:
            return ctx.env[name]
        if ref.env_default is not None:
            return ref.env_default
        raise MissingValueError(
            f"environment variable {name} is not set (used as ${{{ref.text}}})",
            hint=f"export {name}=… or write ${{env.{name}:-default}}",
        )
    if ref.root == "input":
        found = lookup(ctx.input, ref.path)
        if found is _MISSING:
            raise MissingValueError(
                f"input has no '{'.'.join(ref.path)}' (used as ${{{ref.text}}})",
                hint="pass it in --input",
            )
        return found
    assert ref.step is not None
    found = lookup(ctx.results.get(ref.step), ref.path)
    return None if found is _MISSING else found


def _stringify(value: Any) -> str:
    return value if isinstance(value, str) else compact_json(value, ascii_only=True)


def resolve_url_path(template: str, ctx: Context) -> str:
    """An http ``path`` with every substituted value percent-encoded: before the template's
    first literal ``?`` each value is one path segment (``/``, ``?``, ``#``, ``%``, and a
    whole ``.`` or ``..`` encoded too), after it one query value (``&``, ``=``, ``#`` encoded).
    The template's own ``/``, ``?``, ``&`` and ``=`` are kept: input cannot change the route."""
    from urllib.parse import quote

    out: list[str] = []
    in_query = False
    pos = 0
    for match in _TOKEN.finditer(template):
        literal = template[pos : match.start()]
        in_query = in_query or "?" in literal
        out.append(literal)
        pos = match.end()
        if match.group(1) is None:
            out.append("${")
            continue
        value = quote(_stringify(value_of(parse(match.group(1)), ctx)), safe="")
        if not in_query and value in (".", ".."):
            value = value.replace(".", "%2E")  # a dot segment would climb the path
        out.append(value)
    out.append(template[pos:])
    return "".join(out)


def resolve(value: Any, ctx: Context) -> Any:
    """``value`` with every placeholder replaced (recursively through dicts and lists)."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole:
            return value_of(parse(whole.group(1)), ctx)
        return _TOKEN.sub(
            lambda m: "${" if m.group(1) is None else _stringify(value_of(parse(m.group(1)), ctx)), value
        )
    if isinstance(value, dict):
        return {key: resolve(item, ctx) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, ctx) for item in value]
    return value
