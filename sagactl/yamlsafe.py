"""The one YAML loader for saga definitions and sagactl.yaml: PyYAML's safe types only, and
bounded, so a hostile or broken file is refused in milliseconds instead of exhausting memory
or the stack:

- at most MAX_ALIASES alias uses (``*name``) per file, none to a node that contains itself;
- at most MAX_NODES nodes per document once aliases are expanded (a "billion laughs" file of
  500 bytes expands to 10^9 nodes: it is refused at the level that crosses the limit);
- at most MAX_DEPTH levels of nesting.

Crossing a limit raises YamlLimitError, a ``yaml.MarkedYAMLError`` whose mark is the node
that crossed it. A leaf: imports nothing of sagactl (and PyYAML is loaded with this module,
which callers import only when they read YAML).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_ALIASES = 100
MAX_NODES = 20_000
MAX_DEPTH = 64
T = TypeVar("T")


class YamlLimitError(yaml.MarkedYAMLError):
    """The document crosses one of the limits above; ``problem`` says which."""


class _Bounded(Composer):
    """Counts alias uses, expanded nodes and depth while composing (PyYAML's Composer, above
    either parser)."""

    anchors: dict[Any, Node]

    if TYPE_CHECKING:  # the parser's, whichever the loader has

        def check_event(self, *choices: Any) -> bool: ...
        def peek_event(self) -> Any: ...

    def _bound(self) -> None:
        self._aliases = 0
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> nodes it stands for, aliases expanded

    def compose_document(self) -> Node | None:
        self._sizes = {}
        return super().compose_document()

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            anchored = self.anchors.get(event.anchor)
            if anchored is not None:
                if id(anchored) not in self._sizes:
                    raise YamlLimitError(
                        None, None, f"alias *{event.anchor} refers to a node that contains it", event.start_mark
                    )
                self._aliases += 1
                if self._aliases > MAX_ALIASES:
                    raise YamlLimitError(
                        None, None, f"more than {MAX_ALIASES} aliases (*name) in one file", event.start_mark
                    )
            return super().compose_node(parent, index)
        mark = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlLimitError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is None:
            return None
        size = 1
        if isinstance(node, SequenceNode):
            size += sum(self._sizes[id(child)] for child in node.value)
        elif isinstance(node, MappingNode):
            size += sum(self._sizes[id(key)] + self._sizes[id(value)] for key, value in node.value)
        if size > MAX_NODES:
            raise YamlLimitError(
                None, None, f"more than {MAX_NODES} values once aliases are expanded", node.start_mark
            )
        self._sizes[id(node)] = size
        return node


class BoundedLoader(_Bounded, yaml.SafeLoader):
    """yaml.SafeLoader within the limits: the pure-Python reference, whose messages and marks
    sagactl reports for every file it refuses."""

    def __init__(self, stream: Any) -> None:
        yaml.SafeLoader.__init__(self, stream)
        self._bound()

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # The scanner keeps a possible simple key per open [ or { and rescans them all for each
        # token: quadratic in the depth. Refuse before the composer would (it reads ahead).
        if self.flow_level >= MAX_DEPTH:
            raise YamlLimitError(None, None, f"nested more than {MAX_DEPTH} levels deep", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)


FastLoader: type | None = None
if yaml.__with_libyaml__:
    from yaml._yaml import CParser
    from yaml.constructor import SafeConstructor
    from yaml.resolver import Resolver

    class _FastLoader(_Bounded, CParser, SafeConstructor, Resolver):
        """libyaml's scanner and parser (C, ~15x faster on a long definition) under PyYAML's
        Composer, so the same limits hold as nodes are composed: never libyaml's own composer,
        which recurses in C and crashes on a deeply nested file."""

        def __init__(self, stream: Any) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._bound()

    FastLoader = _FastLoader


# Where libyaml and PyYAML's own parser read the same text differently, the reference decides:
# libyaml takes a tab after a token ("key: 1<TAB>") that PyYAML refuses, and reads a lone "!"
# (the non-specific tag) as "" where PyYAML reads null.
_REFERENCE_ONLY = ("\t", "!")


def parsed(text: str, read: Callable[[Any], T]) -> T:
    """``read(loader)`` over ``text`` with the libyaml loader where PyYAML has it; when that
    raises anything (a syntax error, a limit crossed), again with the pure-Python reference, so
    a refused file is reported exactly as without libyaml. Every file the reference reads is
    read to the same data (tests/test_yamlsafe.py). ``read`` must not act on what it reads
    before it returns."""
    if FastLoader is not None and not any(c in text for c in _REFERENCE_ONLY):
        try:
            fast = FastLoader(text)  # text libyaml cannot take (a lone surrogate) fails right here
        except ValueError:
            fast = None
        if fast is not None:
            try:
                return read(fast)
            except (yaml.YAMLError, ValueError):
                pass
            finally:
                fast.dispose()
    loader = BoundedLoader(text)  # the reference: a ReaderError (a YAMLError) for such text
    try:
        return read(loader)
    finally:
        loader.dispose()


def load(text: str) -> Any:
    """The one document in ``text`` as Python data (safe types), within the limits."""
    return parsed(text, lambda loader: loader.get_single_data())
