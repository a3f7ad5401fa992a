"""``config contexts``, ``config use-context``, ``config view``: sagactl.yaml as kubectl users
know their kubeconfig."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagactl.tools import contexts


def list_contexts(config: str | None, context: str | None, env: Mapping[str, str] | None = None) -> contexts.Contexts:
    """``config contexts``: the config file's contexts, the one in effect marked."""
    return contexts.list_contexts(config, context, os.environ if env is None else env)


def use_context(name: str, config: str | None, env: Mapping[str, str] | None = None) -> Path:
    """``config use-context NAME``: write current_context into the config file; its path."""
    return contexts.use_context(name, config, os.environ if env is None else env)


def view(config: str | None, env: Mapping[str, str] | None = None) -> tuple[Path | None, dict[str, Any]]:
    """``config view``: the config file's path and content, secrets masked."""
    return contexts.view(config, os.environ if env is None else env)
