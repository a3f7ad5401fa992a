"""What a saga needs before anything is recorded or sent: an input of the shape its definition
reads, and a value for every placeholder of the calls still to make (input fields, environment
variables). A check that fails leaves the saga log exactly as it was."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sagactl.definitions.model import SagaDefinition, StepDef
from sagactl.definitions.placeholders import Context, MissingValueError, PlaceholderError, parse, references, resolve
from sagactl.errors import UsageError


def preflight(
    definition: SagaDefinition,
    data: Any,
    env: Mapping[str, str],
    *,
    steps: Sequence[StepDef] | None = None,
    actions: bool = True,
) -> None:
    """Fail before anything is recorded or sent when input or environment lack what the saga
    names. ``steps``: only these steps and their endpoints (default: the whole definition);
    ``actions=False``: only their compensations (a saga that is compensating sends no action).
    """
    ctx = Context(saga_id="preflight", input=data, env=env)
    chosen = definition.steps if steps is None else tuple(steps)
    used = {step.endpoint for step in chosen}
    for endpoint in definition.endpoints.values():
        if steps is None or endpoint.name in used:
            resolve(endpoint.config, ctx)
    for step in chosen:
        specs = [step.action] if actions else []
        if step.compensation is not None:
            specs.append(step.compensation)
        for spec in specs:
            try:
                resolve(spec, ctx)
            except MissingValueError as exc:
                raise MissingValueError(f"step '{step.name}': {exc.message}", hint=exc.hint) from exc


def _reads_input_fields(definition: SagaDefinition) -> str | None:
    """How the definition reads fields of its input, if it does: a ``${input.FIELD}`` (not a
    list index) or a call without ``body`` (the default body spreads the input's fields)."""
    for step in definition.steps:
        for phase, spec in (("action", step.action), ("compensation", step.compensation)):
            if spec is None:
                continue
            if "body" not in spec:
                return f"step '{step.name}' {phase} sends the default body, which holds the input's fields"
            for _, expr, _ in references(spec):
                try:
                    ref = parse(expr)
                except PlaceholderError:
                    continue
                if ref.root == "input" and ref.path and not ref.path[0].lstrip("-").isdigit():
                    return f"step '{step.name}' {phase} reads ${{{expr}}}"
    return None


def check_input(definition: SagaDefinition, data: Any) -> None:
    """A saga whose definition reads input fields needs an object as its input (exit 2)."""
    if isinstance(data, dict):
        return
    reads = _reads_input_fields(definition)
    if reads is not None:
        got = (
            "null"
            if data is None
            else "true/false"
            if isinstance(data, bool)
            else "a number"
            if isinstance(data, int | float)
            else "a string"
            if isinstance(data, str)
            else "an array"
        )
        raise UsageError(
            f"input must be a JSON object, got {got}: {reads}",
            hint='pass --input \'{"field": …}\'',
        )
