"""Reading and checking saga definition files: every problem as FILE:LINE:COL: message.

The shipped JSON Schema (sagactl/definitions/saga.schema.json) runs over the YAML data and each of its
errors is mapped back to the YAML node it concerns; then what a schema cannot check:
endpoints that exist, unique step names, placeholders that name known roots and earlier
steps, and keys that do not apply to a step's transport. Valid documents become
``definition.SagaDefinition`` through ``definition.build``.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from sagactl.definitions.model import MAX_DURATION, SagaDefinition, build, parse_duration
from sagactl.definitions.placeholders import PlaceholderError, parse, references
from sagactl.errors import DefinitionError, UsageError

Location = tuple[str | int, ...]

CALL_KEYS_BY_TRANSPORT = {
    "http": {"method", "path", "headers", "body"},
    "sqs": {"command", "body"},
    "exec": {"args", "body"},
}
ALL_CALL_KEYS = set().union(*CALL_KEYS_BY_TRANSPORT.values())


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    column: int
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        tag = "" if self.severity == "error" else f"{self.severity}: "
        return f"{self.file}:{self.line}:{self.column}: {tag}{self.message}"


@dataclass(slots=True)
class Report:
    """Everything ``validate`` found, and the definitions that were valid."""

    problems: list[Problem] = field(default_factory=list)
    definitions: list[SagaDefinition] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]


# -- loading with positions ---------------------------------------------------------------


@dataclass(slots=True)
class _Positions:
    """(line, column) of every value and every mapping key, by location; 1-based."""

    values: dict[Location, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Location, tuple[int, int]] = field(default_factory=dict)
    inline: dict[Location, int] = field(default_factory=dict)  # one-line scalars: 1 if quoted

    def inside(self, where: Location, offset: int) -> tuple[int, int]:
        """Position of character ``offset`` of a one-line string scalar (else its start)."""
        line, col = self.of(where)
        if where in self.inline:
            return line, col + self.inline[where] + offset
        return line, col

    def of(self, where: Location, *, key: bool = False) -> tuple[int, int]:
        if key and where in self.keys:
            return self.keys[where]
        while where not in self.values and where:
            where = where[:-1]
        return self.values.get(where, (1, 1))


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of the definition language (also printed by ``sagactl schema``)."""
    text = resources.files("sagactl.definitions").joinpath("saga.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _mark(node: Any) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _index_node(node: Any, where: Location, pos: _Positions, dupes: list[tuple[Location, str]]) -> None:
    import yaml

    pos.values[where] = _mark(node)
    one_line = isinstance(node, yaml.ScalarNode) and node.start_mark.line == node.end_mark.line
    if one_line and node.style in (None, "'", '"') and "\\" not in str(node.value):
        pos.inline[where] = 0 if node.style is None else 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            child = (*where, key)
            if key in seen:
                dupes.append((child, key))
            seen.add(key)
            pos.keys[child] = _mark(key_node)
            _index_node(value_node, child, pos, dupes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_node(item, (*where, index), pos, dupes)


def _documents(text: str, file: str, report: Report) -> list[tuple[Any, _Positions]]:
    import yaml

    from sagactl.yamlsafe import YamlLimitError, parsed

    docs: list[tuple[Any, _Positions, list[tuple[Location, str]]]] = []

    def read(loader: Any) -> None:
        docs.clear()  # what an attempt read before its error is kept; a retry starts over
        while loader.check_node():
            if (node := loader.get_node()) is not None:
                positions, dupes = _Positions(), list[tuple[Location, str]]()
                _index_node(node, (), positions, dupes)
                docs.append((loader.construct_document(node), positions, dupes))

    try:
        parsed(text, read)
    except YamlLimitError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        report.problems.append(Problem(file, line, col, f"YAML: {exc.problem}"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(f"{exc.problem or exc.context or 'invalid YAML'}".split())
        if exc.context and exc.context_mark and exc.problem_mark and exc.context_mark != exc.problem_mark:
            start = exc.context_mark
            what += f" ({exc.context} at {start.line + 1}:{start.column + 1})"
        report.problems.append(Problem(file, line, col, f"YAML syntax: {what}"))
    except yaml.YAMLError as exc:
        report.problems.append(Problem(file, 1, 1, f"YAML: {' '.join(str(exc).split())}"))
    for _, positions, dupes in docs:
        for where, key in dupes:
            line, col = positions.of(where, key=True)
            report.problems.append(Problem(file, line, col, f"duplicate key '{key}'"))
    return [(value, positions) for value, positions, _ in docs]


# -- schema errors -> messages ------------------------------------------------------------

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return "a number"
    return "a string"


def _what(where: Location) -> str:
    """A human name for a location: 'step 2 (charge)', 'endpoint inventory', 'defaults'."""
    if not where:
        return "document"
    return ".".join(str(part) for part in where)


def _schema_problems(doc: Any, pos: _Positions, file: str) -> list[Problem]:
    from sagactl.definitions.schemacache import valid_marker

    marker = valid_marker(doc, json.dumps(schema(), sort_keys=True))
    if marker is not None and marker.exists():
        return []  # this exact document passed this exact schema before: jsonschema costs ~100 ms to load
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema())
    problems: list[Problem] = []
    seen: set[tuple[Location, str]] = set()
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        for leaf in _leaves(error):
            where: Location = tuple(leaf.absolute_path)
            for key_where, message in _messages(leaf, where):
                if (key_where, message) in seen:
                    continue
                seen.add((key_where, message))
                line, col = pos.of(key_where, key=key_where != where)
                problems.append(Problem(file, line, col, message))
    if not problems and marker is not None:
        with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
    return problems


def _leaves(error: Any) -> list[Any]:
    """The most specific errors: oneOf/anyOf/if-then wrappers are replaced by their causes."""
    if error.validator in ("oneOf", "anyOf") and error.context:
        best = min(error.context, key=lambda e: len(list(e.absolute_path)) * -1)
        return _leaves(best)
    return [error]


def _messages(error: Any, where: Location) -> list[tuple[Location, str]]:
    validator = error.validator
    value = error.instance
    schema_part = error.schema
    name = _what(where)
    if validator == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(schema_part.get("properties", {}))
        extras = [k for k in value if k not in schema_part.get("properties", {})]
        hint = f" (expected one of: {', '.join(allowed)})" if allowed else ""
        return [((*where, key), f"unknown key '{key}' in {name}{hint}") for key in extras]
    if validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [(where, f"{name}: missing required key '{missing}'")]
    if validator == "type":
        expected = schema_part.get("type")
        wanted = (
            " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in expected)
            if isinstance(expected, list)
            else _TYPE_NAMES.get(str(expected), str(expected))
        )
        return [(where, f"{name}: expected {wanted}, got {_json_type(value)}")]
    if validator == "pattern" and "duration" in schema_part.get("description", "").lower():
        return [(where, f"{name}: invalid duration {value!r} (use ms, s, m, h or d, e.g. 30s, 2m, 1h30m)")]
    if validator == "pattern":
        return [
            (where, f"{name}: invalid name {value!r} (letters, digits, _ . - ; not starting with a digit)")
        ]
    if validator in ("enum", "const"):
        options = schema_part.get("enum") or [schema_part.get("const")]
        if where and where[-1] == "type" and len(where) == 3 and where[0] == "endpoints":
            return [
                (
                    where,
                    f"endpoint {where[1]}: unknown transport type {value!r}"
                    f" (expected one of: {', '.join(options)})",
                )
            ]
        return [(where, f"{name}: {value!r} is not one of: {', '.join(map(str, options))}")]
    if validator == "minItems":
        return [(where, f"{name}: needs at least {schema_part.get('minItems')} item(s)")]
    if validator in ("minimum", "maximum", "minLength", "maxLength"):
        return [(where, f"{name}: {error.message}")]
    return [(where, f"{name}: {error.message}")]


# -- semantic checks ----------------------------------------------------------------------


def _semantic_problems(doc: dict[str, Any], pos: _Positions, file: str) -> list[Problem]:
    """What the schema cannot check. Runs on any document, valid or not (every problem of a
    file is reported in one run): parts of the wrong type are skipped, the schema reports them."""
    problems: list[Problem] = []

    def add(
        where: Location,
        message: str,
        *,
        key: bool = False,
        severity: str = "error",
        offset: int | None = None,
    ) -> None:
        line, col = pos.inside(where, offset) if offset is not None else pos.of(where, key=key)
        problems.append(Problem(file, line, col, message, severity))

    endpoints = doc.get("endpoints")
    if not isinstance(endpoints, dict):
        endpoints = {}
    steps = doc.get("steps")
    if not isinstance(steps, list):
        steps = []
    names = {s.get("name") for s in steps if isinstance(s, dict) and isinstance(s.get("name"), str)}
    for ep_name, endpoint in endpoints.items():
        for where, expr, offset in references(endpoint):
            _check_ref(expr, ("endpoints", ep_name, *where), offset, add, allowed_roots=("env",))

    _check_durations(doc.get("defaults"), ("defaults",), add)
    seen_steps: dict[str, int] = {}
    earlier: set[str] = set()  # names of the steps before this one (built as the loop goes)
    for index, step in enumerate(steps):
        if index and isinstance(steps[index - 1], dict):
            earlier.add(str(steps[index - 1].get("name")))
        if not isinstance(step, dict):
            continue
        here: Location = ("steps", index)
        name = step.get("name")
        if isinstance(name, str):
            if name in seen_steps:
                add(
                    (*here, "name"),
                    f"duplicate step name '{name}' (first defined as step {seen_steps[name] + 1})",
                )
            else:
                seen_steps[name] = index
        ep = step.get("endpoint")
        ep_type = None
        if isinstance(ep, str):
            if ep not in endpoints:
                known = ", ".join(sorted(endpoints)) or "none defined"
                add((*here, "endpoint"), f"step '{name}': unknown endpoint '{ep}' (known: {known})")
            elif isinstance(endpoints[ep], dict) and isinstance(endpoints[ep].get("type"), str):
                ep_type = endpoints[ep].get("type")
        _check_durations(step, here, add)
        for phase in ("action", "compensation"):
            call = step.get(phase)
            if not isinstance(call, dict):
                continue
            if ep_type in CALL_KEYS_BY_TRANSPORT:
                for key in call:
                    # a key no transport takes is the schema's to report ("unknown key")
                    if key in ALL_CALL_KEYS and key not in CALL_KEYS_BY_TRANSPORT[ep_type]:
                        allowed = ", ".join(sorted(CALL_KEYS_BY_TRANSPORT[ep_type]))
                        add(
                            (*here, phase, key),
                            f"step '{name}' {phase}: key '{key}' does not apply to {ep_type}"
                            f" endpoint '{ep}' (expected: {allowed})",
                            key=True,
                        )
                if ep_type == "sqs" and "command" not in call:
                    add(
                        (*here, phase),
                        f"step '{name}' {phase}: sqs needs 'command' (the message's command attribute)",
                    )
            own = name if phase == "compensation" and isinstance(name, str) else None
            for where, expr, offset in references(call):
                ref_where = (*here, phase, *where)
                step_ref = _check_ref(
                    expr, ref_where, offset, add, allowed_roots=("input", "steps", "saga_id", "env")
                )
                if step_ref is None:
                    continue
                if step_ref not in earlier and step_ref != own:
                    later = step_ref in names
                    why = "a later step (only earlier steps' results exist yet)" if later else "no such step"
                    if step_ref == name and phase == "action":
                        why = "the step itself (its result does not exist before it runs)"
                    add(ref_where, f"step '{name}' {phase}: '${{{expr}}}' refers to {why}", offset=offset)
                elif phase == "compensation" and step_ref == name:
                    add(
                        ref_where,
                        f"step '{name}' compensation uses its own result, which is null when the"
                        " step's outcome is unknown (timeout); address the work by input or by the"
                        " idempotency key",
                        severity="warning",
                        offset=offset,
                    )
    return problems


def _check_duration(value: Any, where: Location, add: Any, *, zero: bool = False) -> None:
    """A duration above zero (``zero``: zero allowed) and at most MAX_DURATION (30d)."""
    if not isinstance(value, str):
        return
    try:
        seconds = parse_duration(value)
    except UsageError as exc:
        if "too large" in exc.message:
            add(where, f"{_what(where)}: duration {value[:40]!r} is longer than 30d, the most sagactl accepts")
        return  # else the schema already reported the pattern
    if seconds > MAX_DURATION:
        add(where, f"{_what(where)}: duration {value!r} is longer than 30d, the most sagactl accepts")
    elif seconds <= 0 and not (zero and seconds == 0):
        add(where, f"{_what(where)}: duration must be greater than zero")


def _check_durations(holder: Any, where: Location, add: Any) -> None:
    """Timeouts and retry backoffs of ``defaults`` or of one step."""
    if not isinstance(holder, dict):
        return
    for key in ("timeout", "compensation_timeout"):
        if key in holder:
            _check_duration(holder[key], (*where, key), add)
    for policy in ("retry", "compensation_retry"):
        if isinstance(holder.get(policy), dict):
            for key in ("initial_backoff", "max_backoff"):
                if key in holder[policy]:
                    _check_duration(holder[policy][key], (*where, policy, key), add, zero=True)


def _check_ref(
    expr: str, where: Location, offset: int, add: Any, *, allowed_roots: tuple[str, ...]
) -> str | None:
    try:
        ref = parse(expr)
    except PlaceholderError as exc:
        add(where, str(exc), offset=offset)
        return None
    if ref.root not in allowed_roots:
        allowed = ", ".join(allowed_roots)
        add(where, f"'${{{expr}}}': {ref.root} is not available here (allowed: {allowed})", offset=offset)
        return None
    return ref.step


def check_text(text: str, file: str, base_dir: str) -> Report:
    """Validate one file's text; valid documents become definitions in the report."""
    report = Report()
    names: dict[str, int] = {}
    for doc, pos in _documents(text, file, report):
        if doc is None:
            continue
        problems = _schema_problems(doc, pos, file)
        if isinstance(doc, dict):  # both, so one run reports every problem of the file
            problems += [p for p in _semantic_problems(doc, pos, file) if p not in problems]
        report.problems.extend(sorted(dict.fromkeys(problems), key=lambda p: (p.line, p.column)))
        if any(p.severity == "error" for p in problems) or not isinstance(doc, dict):
            continue
        saga = str(doc["saga"])
        if saga in names:
            line, col = pos.of(("saga",))
            report.problems.append(
                Problem(
                    file,
                    line,
                    col,
                    f"duplicate saga '{saga}' in one file (first in document {names[saga] + 1})",
                )
            )
            continue
        names[saga] = len(report.definitions)
        report.definitions.append(build(doc, base_dir))
    if not report.definitions and not report.problems:
        report.problems.append(
            Problem(file, 1, 1, "no saga definition found (expected 'saga:' and 'steps:')")
        )
    return report


def check_file(path: str | Path) -> Report:
    """Validate a file on disk (``-`` is not accepted: definitions need a directory)."""
    file = str(path)
    try:
        text = Path(path).read_text("utf-8")
    except FileNotFoundError:
        return Report(problems=[Problem(file, 1, 1, "file not found")])
    except (OSError, UnicodeDecodeError) as exc:
        return Report(problems=[Problem(file, 1, 1, f"cannot read: {exc}")])
    return check_text(text, file, str(Path(path).resolve().parent))


def load(path: str | Path, saga: str | None = None) -> SagaDefinition:
    """The one definition to run from ``path`` (``saga`` picks among several documents).

    Raises DefinitionError listing every problem.
    """
    report = check_file(path)
    if report.errors:
        raise DefinitionError([str(p) for p in report.errors])
    if saga is not None:
        for definition in report.definitions:
            if definition.name == saga:
                return definition
        names = ", ".join(d.name for d in report.definitions)
        raise UsageError(f"{path}: no saga named '{saga}' (found: {names})")
    if len(report.definitions) > 1:
        names = ", ".join(d.name for d in report.definitions)
        raise UsageError(f"{path} holds several sagas ({names})", hint="pick one with --saga NAME")
    return report.definitions[0]
