"""Secrets out of text: DSN and URL passwords, bearer tokens, ``password=…`` pairs and the
values of environment variables whose names say they are secrets. A leaf: imports nothing
of sagactl, so every layer can mask what it writes."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s]+)@")
_KV_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|token|secret|api[_-]?key)\s*[=:]\s*)(?P<secret>'[^']*'|\"[^\"]*\"|[^\s,;&]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<head>\b(?:Bearer|Basic|Token)\s+)(?P<secret>[A-Za-z0-9._~+/=-]{4,})")
_SECRET_ENV_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_KEY|CREDENTIAL|AUTH)", re.I)


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they are secrets."""
    env = os.environ if env is None else env
    values = {v for k, v in env.items() if _SECRET_ENV_NAME.search(k) and len(v) >= 4}
    return sorted(values, key=len, reverse=True)


def mask_secrets(text: str, env: Mapping[str, str] | None = None) -> str:
    """``text`` with DSN/URL passwords, bearer tokens and secret env values replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    text = _KV_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)
    text = _BEARER.sub(lambda m: f"{m['head']}{MASK}", text)
    for value in secret_values(env):
        text = text.replace(value, MASK)
    return text


def mask_value(value: Any, env: Mapping[str, str] | None = None) -> Any:
    """Mask secrets in every string inside a JSON-like value."""
    if isinstance(value, str):
        return mask_secrets(value, env)
    if isinstance(value, list):
        return [mask_value(v, env) for v in value]
    if isinstance(value, dict):
        return {k: mask_value(v, env) for k, v in value.items()}
    return value
