"""`sagactl graph`: a saga definition drawn as Mermaid or Graphviz DOT text.

What is drawn: the forward steps in order (each with its call, its endpoint and where that
points, its timeout and retry budget), the compensation of each step that has one, and the
edges the engine follows: a step the participant refused hands over to the compensation of
the nearest earlier step that has one (compensations run in strict reverse order); a step
whose outcome is unknown (a timeout, retries exhausted) is compensated itself first; the last
compensation ends the saga failed, and one whose retries run out leaves it compensating.

Labels are foreign text (names, URLs, commands, descriptions come from a YAML file someone
else wrote): node identifiers are generated, never taken from the file, and every label is
escaped for the target language, control characters included, and has its secrets masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sagactl.codec import escaped
from sagactl.definitions.model import Endpoint, RetryPolicy, SagaDefinition, StepDef, duration, retry_budget
from sagactl.masking import mask_secrets
from sagactl.models import counted

FORMATS = ("mermaid", "dot")





def _retry_line(policy: RetryPolicy, timeout: float) -> str:
    if policy.max_attempts == 1:
        tries = "1 attempt"
    else:
        tries = (
            f"{counted(policy.max_attempts, 'attempt')}, backoff {duration(policy.initial_backoff)}"
            f"..{duration(policy.max_backoff)}"
        )
    return f"timeout {duration(timeout)} · {tries} · budget {duration(retry_budget(policy, timeout))}"


def endpoint_target(endpoint: Endpoint) -> str:
    """Where an endpoint points, as written (placeholders unresolved): a URL, queue, command."""
    config = endpoint.config
    if endpoint.type == "http":
        return str(config.get("url", ""))
    if endpoint.type == "sqs":
        return f"{config.get('queue', '')} (replies: {config.get('reply_queue', '')})"
    command = config.get("command", "")
    return " ".join(str(part) for part in command) if isinstance(command, list) else str(command)


def call_text(call: dict[str, Any] | None) -> str:
    """What a step sends, in a few words: ``POST /reservations``, a command, exec args."""
    if not call:
        return ""
    if "command" in call:
        return str(call["command"])
    if "args" in call:
        return " ".join(str(arg) for arg in call.get("args") or [])
    if "path" in call or "method" in call:
        return f"{call.get('method', 'POST')} {call.get('path', '')}".strip()
    return ""


@dataclass(frozen=True, slots=True)
class Node:
    ident: str
    lines: tuple[str, ...]  # foreign text: escaped by each renderer
    kind: str  # "terminal", "step", "compensation"


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str = ""  # sagactl's own words only
    dashed: bool = False


@dataclass(frozen=True, slots=True)
class Graph:
    title: str
    description: str | None
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


def _node(index: int, step: StepDef, definition: SagaDefinition, *, undo: bool) -> Node:
    """A step's action (``undo``: its compensation) as a node: what it calls, where, and how long
    it may keep trying; only an action's node says where its endpoint points."""
    endpoint = definition.endpoints[step.endpoint]
    call = call_text(step.compensation if undo else step.action)
    title = f"undo {step.name}" if undo else f"{index + 1}. {step.name}"
    where = f"{endpoint.name} ({endpoint.type})" + ("" if undo else f" {endpoint_target(endpoint)}")
    policy, timeout = (step.compensation_retry, step.compensation_timeout) if undo else (step.retry, step.timeout)
    return Node(
        f"c{index}" if undo else f"s{index}",
        (title + (f": {call}" if call else ""), where, _retry_line(policy, timeout)),
        "compensation" if undo else "step",
    )


def build_graph(definition: SagaDefinition) -> Graph:
    """The nodes and edges of ``definition`` (see the module's docstring)."""
    steps = definition.steps
    nodes = [Node("start", (f"start {definition.name}",), "terminal")]
    nodes += [_node(i, step, definition, undo=False) for i, step in enumerate(steps)]
    undoable = [i for i, step in enumerate(steps) if step.compensation is not None]
    nodes += [_node(i, steps[i], definition, undo=True) for i in reversed(undoable)]
    nodes += [Node("completed", ("completed",), "terminal"), Node("failed", ("failed",), "terminal")]
    if undoable:
        nodes.append(Node("stuck", ("stays compensating", "until resume or resolve"), "terminal"))

    def undo_from(index: int) -> str:
        """Where compensating starts when the step at ``index`` is the latest to undo."""
        earlier = [i for i in undoable if i <= index]
        return f"c{earlier[-1]}" if earlier else "failed"

    edges = [Edge("start", "s0")]
    edges += [Edge(f"s{i}", f"s{i + 1}") for i in range(len(steps) - 1)]
    edges.append(Edge(f"s{len(steps) - 1}", "completed"))
    for i, step in enumerate(steps):
        if step.compensation is None:
            edges.append(Edge(f"s{i}", undo_from(i - 1), "fails", dashed=True))
        else:  # refused: nothing happened to undo; unknown (a timeout): undo this step too
            edges.append(Edge(f"s{i}", undo_from(i - 1), "refused", dashed=True))
            edges.append(Edge(f"s{i}", f"c{i}", "outcome unknown", dashed=True))
    for i in undoable:
        edges.append(Edge(f"c{i}", undo_from(i - 1), "undone"))
    for i in reversed(undoable):
        edges.append(Edge(f"c{i}", "stuck", "retries exhausted", dashed=True))
    return Graph(definition.name, definition.description, tuple(nodes), tuple(edges))


# -- escaping --------------------------------------------------------------------------------


def _plain(text: str) -> str:
    """Foreign text as one line of visible characters with its secrets masked."""
    return escaped(mask_secrets(text))


# Mermaid entity codes: inside a quoted label these characters could end the label, start an
# entity, or be read as HTML or a markdown string.
_MERMAID = {"#": "#35;", '"': "#quot;", "&": "#amp;", "<": "#lt;", ">": "#gt;", "`": "#96;", "|": "#124;"}


def mermaid_text(text: str) -> str:
    """``text`` safe inside a Mermaid ``"…"`` label."""
    return "".join(_MERMAID.get(ch, ch) for ch in _plain(text))


def dot_text(text: str) -> str:
    """``text`` safe inside a DOT ``"…"`` string: quotes and backslashes escaped (so ``\\N``,
    ``\\G`` and friends stay literal)."""
    return _plain(text).replace("\\", "\\\\").replace('"', '\\"')


# -- renderers -------------------------------------------------------------------------------

_MERMAID_SHAPES = {"terminal": ('(["', '"])'), "step": ('["', '"]'), "compensation": ('[/"', '"/]')}


def to_mermaid(graph: Graph) -> str:
    """A Mermaid flowchart (``flowchart TD``), one statement per line, ending in a newline."""
    lines = ["flowchart TD"]
    if graph.description:
        lines.append(f"  %% {mermaid_text(graph.description)}")
    for node in graph.nodes:
        start, end = _MERMAID_SHAPES[node.kind]
        label = "<br/>".join(mermaid_text(line) for line in node.lines)
        lines.append(f"  {node.ident}{start}{label}{end}")
    for edge in graph.edges:
        arrow = "-.->" if edge.dashed else "-->"
        label = f"|{mermaid_text(edge.label)}|" if edge.label else ""
        lines.append(f"  {edge.source} {arrow}{label} {edge.target}")
    lines.append("  classDef compensation fill:#fff4e5,stroke:#d98c00")
    lines.append("  classDef terminal fill:#eef,stroke:#669")
    compensations = [n.ident for n in graph.nodes if n.kind == "compensation"]
    if compensations:
        lines.append(f"  class {','.join(compensations)} compensation")
    lines.append(f"  class {','.join(n.ident for n in graph.nodes if n.kind == 'terminal')} terminal")
    return "\n".join(lines) + "\n"


_DOT_SHAPES = {
    "terminal": 'shape=oval, style=filled, fillcolor="#eeeeff"',
    "step": "shape=box",
    "compensation": 'shape=box, style="rounded,filled", fillcolor="#fff4e5"',
}


def to_dot(graph: Graph) -> str:
    """A Graphviz digraph, one statement per line, ending in a newline."""
    lines = [f'digraph "{dot_text(graph.title)}" {{', "  rankdir=TB;", '  node [fontname="Helvetica"];']
    if graph.description:
        lines.append(f'  label="{dot_text(graph.description)}";')
    for node in graph.nodes:
        label = "\\n".join(dot_text(line) for line in node.lines)
        lines.append(f'  {node.ident} [label="{label}", {_DOT_SHAPES[node.kind]}];')
    for edge in graph.edges:
        attributes = []
        if edge.label:
            attributes.append(f'label="{dot_text(edge.label)}"')
        if edge.dashed:
            attributes.append("style=dashed")
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"  {edge.source} -> {edge.target}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(definition: SagaDefinition, fmt: str = "mermaid") -> str:
    """``definition`` as ``fmt`` text (mermaid or dot)."""
    graph = build_graph(definition)
    return to_dot(graph) if fmt == "dot" else to_mermaid(graph)
