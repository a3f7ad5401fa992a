"""Shell completion callbacks (Typer ``autocompletion=``): saga IDs, the step names of the saga
on the command line, context names. Silent on any error: a Tab prints nothing it cannot
answer. Everything loads inside the callbacks; this module costs nothing to import."""

from __future__ import annotations

import os
from typing import Any

import typer


def _settings(ctx: typer.Context) -> Any:
    from sagactl.config import resolve_settings

    params = ctx.params
    return resolve_settings(
        dsn=params.get("dsn") or os.environ.get("SAGACTL_DSN") or None,
        config=params.get("config") or os.environ.get("SAGACTL_CONFIG") or None,
        context=params.get("context") or os.environ.get("SAGACTL_CONTEXT") or None,
        preset=params.get("preset") or os.environ.get("SAGACTL_PRESET") or None,
    )


def saga_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    """Saga IDs starting with what is typed (at most 50, from the primary key's index)."""
    try:
        from sagactl.ops.complete import saga_ids as found

        return found(_settings(ctx), incomplete)
    except Exception:  # completion never fails loudly
        return []


def step_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """The steps of the saga named on the command line, those starting with what is typed."""
    try:
        from sagactl.ops.complete import step_names as found

        saga_id = ctx.params.get("saga_id") or _first_argument(ctx, _typed_words())
        return [name for name in found(_settings(ctx), str(saga_id or "")) if name.startswith(incomplete)]
    except Exception:
        return []


def _typed_words() -> list[str]:
    """The words before the one being completed, as the shell's completion script passed them
    (bash: COMP_WORDS and COMP_CWORD; zsh and fish: _TYPER_COMPLETE_ARGS)."""
    import shlex

    def split(text: str) -> list[str]:
        try:
            return shlex.split(text)
        except ValueError:  # an open quote in the word being typed
            return text.split()

    if "COMP_WORDS" in os.environ:
        return split(os.environ["COMP_WORDS"])[: int(os.environ.get("COMP_CWORD", "0") or 0)]
    line = os.environ.get("_TYPER_COMPLETE_ARGS", "")
    words = split(line)
    return words if line.endswith(" ") else words[:-1]


def _first_argument(ctx: typer.Context, args: list[str]) -> str | None:
    """The first positional word after the command's name in ``args`` (the words typed before
    the one being completed): Click leaves arguments unparsed while an option waits for its
    value, so they are read here, skipping each option that takes a value and its value."""
    takes_value = {
        name
        for param in ctx.command.params
        if isinstance(param, typer.core.TyperOption) and not param.is_flag and not param.count
        for name in param.opts
    }
    words = list(args)
    if ctx.info_name in words:
        words = words[words.index(ctx.info_name) + 1 :]
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in takes_value  # "--opt=value" is not an option's name: it takes no next word
        else:
            return word
    return None


def context_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """The contexts of the config file starting with what is typed."""
    try:
        from sagactl.ops.complete import context_names as found

        config = ctx.params.get("config") or os.environ.get("SAGACTL_CONFIG") or None
        return [name for name in found(config, os.environ) if name.startswith(incomplete)]
    except Exception:
        return []


def preset_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """The presets whose names start with what is typed."""
    from sagactl.config import PRESET_NAMES

    return [name for name in PRESET_NAMES if name.startswith(incomplete)]
