"""Hostile YAML: files a parser must refuse quickly (definitions and sagactl.yaml alike)."""

from __future__ import annotations

# 9 levels of 9 aliases: 342 bytes that expand to 9^9 (387 million) strings.
BILLION_LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9 if prev else ['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)
SELF_ALIAS = "saga: &x [*x]\n"  # a node that contains itself: endless when walked
DEEP = "saga: " + "[" * 50_000 + "]" * 50_000 + "\n"  # deeper than any stack; PyYAML's scanner is O(depth²)
MANY_ALIASES = "x: &x 1\ny: [" + ", ".join(["*x"] * 500) + "]\n"
DEEP_BLOCK = "".join(f"{' ' * level}k{level}:\n" for level in range(200)) + " " * 200 + "x\n"  # indentation
