"""The documentation as tests read it: README.md and every page under docs/ (whoever wrote it),
their fenced code blocks, the ``sagactl`` command lines in them, and the console examples that
show output (``$ command`` lines, each followed by what it prints), with the setup an HTML
comment before a block may give:

    <!-- setup:
    sagactl run sample-configs/order.yaml --input @sample-configs/order-input.json -q
    -->
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SHELLS = ("sh", "bash", "shell", "console")
ELLIPSIS = "…"


def pages() -> list[Path]:
    """README.md and every Markdown page of the site, generated ones included."""
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@dataclass(frozen=True)
class Block:
    """A fenced code block: its page, first line (1-based, the fence), info string, lines, and
    the setup commands of an HTML comment just before it."""

    page: Path
    line: int
    info: str
    lines: tuple[str, ...]
    setup: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{name(self.page)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, in order."""
    found: list[Block] = []
    text = page.read_text("utf-8").splitlines()
    index = 0
    setup: tuple[str, ...] = ()
    while index < len(text):
        line = text[index]
        if line.startswith("<!-- setup:"):
            end = next(i for i in range(index, len(text)) if text[i].rstrip().endswith("-->"))
            setup = tuple(s.strip() for s in text[index + 1 : end] if s.strip())
            index = end + 1
            continue
        fence = re.match(r"^(```+|~~~+)\s*([\w-]*)", line)
        if fence:
            marker = fence.group(1)
            end = next((i for i in range(index + 1, len(text)) if text[i].startswith(marker)), len(text))
            found.append(Block(page, index + 1, fence.group(2), tuple(text[index + 1 : end]), setup))
            setup = ()
            index = end + 1
            continue
        if line.strip():
            setup = () if not line.startswith("<!--") else setup
        index += 1
    return found


_ENV = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)+")


def command_text(line: str) -> str | None:
    """The sagactl command a shell line runs (``$ `` prompt and ``VAR=value`` prefixes taken
    off, ``$(...)`` made one word), or None when it runs no sagactl."""
    line = line.strip()
    if line.startswith("$ "):
        line = line[2:].strip()
    line = _ENV.sub("", line)
    if not line.startswith("sagactl ") and line != "sagactl":
        return None
    line = re.sub(r";(\s|$)", r" ;\1", line)  # `cmd; next` ends cmd, as the shell reads it
    return re.sub(r"\$\([^)]*\)", "X", line)


def command_lines() -> list[tuple[str, str]]:
    """(where, line) for every sagactl command line in a shell or console block of every page,
    and in every setup comment."""
    found = []
    for page in pages():
        for block in blocks(page):
            candidates = list(block.setup)
            if block.info in SHELLS or (block.info == "" and any(s.startswith("$ sagactl") for s in block.lines)):
                candidates += list(block.lines)
            for line in candidates:
                text = command_text(line)
                if text is not None:
                    found.append((block.where, text))
    return found


@dataclass
class Step:
    """One ``$ command`` of a console example: the command as typed, the exit code it must end
    with (``# exit N`` after it; else 0) and the lines it must print (stdout and stderr as a
    terminal shows them)."""

    command: str
    exit_code: int = 0
    expected: list[str] = field(default_factory=list)


def steps(block: Block) -> list[Step]:
    """The commands of a console block and what each prints."""
    found: list[Step] = []
    for line in block.lines:
        if line.startswith("$ "):
            command = line[2:]
            code = 0
            marker = re.search(r"\s+#\s*exit (\d+)\s*$", command)
            if marker:
                code, command = int(marker.group(1)), command[: marker.start()]
            found.append(Step(command.strip(), code))
        elif found:
            found[-1].expected.append(line.rstrip())
    return [step for step in found if not step.command.startswith("#")]


def examples() -> list[Block]:
    """Every console block that shows output (a ``$ command`` and what it prints) of every
    page; a console block of bare commands shows none (its sagactl lines are parsed)."""
    return [
        block
        for page in pages()
        for block in blocks(page)
        if block.info == "console" and any(line.startswith("$ ") for line in block.lines)
    ]


def matches(expected: list[str], got: list[str]) -> bool:
    """``got`` is what ``expected`` shows: line for line, ``…`` within a line standing for any
    text and a line that is only ``…`` for any number of lines."""
    pattern = ""
    for line in expected:
        if line.strip() == ELLIPSIS:
            pattern += r"(?:[^\n]*\n)*?"
        else:
            pattern += ".*?".join(re.escape(part) for part in line.split(ELLIPSIS)) + r"[ \t]*\n"
    text = "".join(line.rstrip() + "\n" for line in got)
    return re.fullmatch(pattern, text) is not None
