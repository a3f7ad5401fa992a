"""``graph`` and ``stats --steps``: what a definition looks like, how its steps behave."""

from __future__ import annotations


def graph_file(file: str, saga: str | None, fmt: str) -> str:
    """``graph``: the definition in ``file`` (``saga`` picks among several) as Mermaid or DOT
    text. An invalid file raises DefinitionError (exit 2) listing every problem."""
    from sagactl import graph, validation

    return graph.render(validation.load(file, saga), fmt)
