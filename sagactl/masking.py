"""Secrets out of text, in one linear pass: URL userinfo passwords, ``Authorization`` values,
bearer/basic credentials, the values of ``key=value`` pairs whose key names a secret, and
literal values known to be secret (environment variables named ``*KEY*``, ``*TOKEN*``,
``*SECRET*``, ``*PASSWORD*``; what a definition's ``${env.…}`` placeholders resolved to).

Nothing else is touched: prose such as "Token expired", "password: must be rotated",
/etc/passwd or "keyboard" reads the same after masking. A leaf: imports nothing of sagactl,
so every layer can mask what it writes or stores.

Every pattern is anchored on a literal (``://``, a secret word, ``authorization``, ``bearer``)
and bounded in length, so masking costs time linear in the text (a 250 KB body: milliseconds).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter environment values would mask ordinary words and numbers
_NOT_SECRETS = frozenset({"true", "false", "null", "none", "yes", "no", "on", "off", "****"})

# Environment variable names whose values are secrets (docs/errors.md: *KEY*, *TOKEN*, *SECRET*, *PASSWORD*).
_SECRET_ENV_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)

# -- URL userinfo: scheme://user:PASSWORD@host ---------------------------------------------------
# Found from its "://" (a literal: the engine searches for it, nothing to backtrack before it);
# the password runs to the last @ before the path (greedy, bounded: linear).
_USERINFO = re.compile(r"://[^\s:/?#@\[\]]{0,256}:(?P<secret>[^\s/]{1,1024})@")


# -- secret words ----------------------------------------------------------------------------------
# Every other pattern starts at a word: a key ending in password/passwd/passphrase/pwd/secret/
# token/api_key/access_key…, Authorization, or bearer/basic. The words are found with bytes.find
# on an ASCII-lowered copy (one byte per character: offsets match the text), and at each hit one
# pattern is matched, anchored, on the text: it decides in C whether a secret follows, so text
# full of such words ("Bearer Bearer …", "token: expired …") costs no Python work per word.
# A * before a word counts as part of a word: a mask never starts a new match.
def _credential(run: str, plain: str, no_upper: str, no_lower: str, marks: str) -> str:
    """A run of ``run`` characters shaped like an opaque credential: six or more, with a digit
    or a mark, or with upper and lower case after the first ("hunter2", "eyJhbGci…",
    "dXNlcjpwYXNz", "ghp_x1…"; not "expired", "re-enter", "Authentication"). ``plain``,
    ``no_upper``, ``no_lower``: ``run`` without digits and marks, capitals, small letters. The
    lookaheads are possessive: each scans the token once, never backtracking."""
    return (
        rf"(?={run}{{6}})(?:(?={plain}*+[0-9{marks}])|(?={run}{no_upper}*+[A-Z])(?={run}{no_lower}*+[a-z]))"
        rf"{run}{{1,4096}}"
    )


_MARKS = r"+=_~!@#$%^&*|"  # not / . - : paths and hyphenated words are prose
_NOT_BARE = r"\s,;&\"'<>(){}\[\]\\"
_BARE = f"[^{_NOT_BARE}]"  # a value written without quotes
_BARE_CREDENTIAL = _credential(_BARE, f"[^{_NOT_BARE}0-9{_MARKS}]", f"[^{_NOT_BARE}A-Z]", f"[^{_NOT_BARE}a-z]", _MARKS)
_TOKEN_CREDENTIAL = _credential(  # a bearer token or basic credentials (base64)
    r"[A-Za-z0-9._~+/-]", r"[A-Za-z./-]", r"[a-z0-9._~+/-]", r"[A-Z0-9._~+/-]", "_~+"
)
# A quoted value; after an escaped quote (JSON inside a JSON string) it ends at the next
# backslash, else escaped characters belong to it.
_DQ = r"(?(esc)\\\"(?P<edq>[^\"\\\r\n]{1,4096})|\"(?P<dq>(?:[^\"\\\r\n]|\\.){1,4096}))"
_SQ = r"(?(esc)\\'(?P<esq>[^'\\\r\n]{1,4096})|'(?P<sq>(?:[^'\\\r\n]|\\.){1,4096}))"
_KEY_ENDS = r"(?![A-Za-z0-9_-])(?=\\?[\"']?[ \t]{0,3}[=:])"
# key=value always; "key: value" when the key is quoted (JSON, a repr) or the value is an opaque
# credential, so prose such as "password: must be rotated" stays.
_VALUE_AFTER_KEY = (
    r"(?P<kq>(?P<esc>\\)?[\"'])?[ \t]{0,3}(?:(?P<eq>=)(?!=)|:)[ \t]{0,3}"
    rf"(?:{_DQ}|{_SQ}|(?(eq)(?P<bare>{_BARE}{{1,4096}})|(?(kq)(?P<kbare>{_BARE}{{1,4096}})"
    rf"|(?P<cred>{_BARE_CREDENTIAL}))))"
)
_ONE_TOKEN_SCHEMES = r"bearer|basic|token|api-?key"
_OTHER_SCHEMES = (
    r"digest|negotiate|ntlm|oauth|hoba|mutual|scram-sha-1|scram-sha-256|vapid|aws4-hmac-sha256|hmac|signature"
)
_SCHEME_PREFIX = rf"(?i:{_ONE_TOKEN_SCHEMES}|{_OTHER_SCHEMES})[ \t]{{1,3}}"
# Compiled on first need (``_pattern``): most texts hold none of the words, and compiling all of
# them cost every command ~10 ms of start-up.
_WORDS: tuple[tuple[bytes, str], ...] = (
    (b"pass", r"(?i:pass(?:word|wd|phrase))" + _KEY_ENDS + _VALUE_AFTER_KEY),
    (b"pwd", r"(?i:pwd)" + _KEY_ENDS + _VALUE_AFTER_KEY),
    (b"secret", r"(?i:secret)" + _KEY_ENDS + _VALUE_AFTER_KEY),
    (b"token", r"(?i:token)" + _KEY_ENDS + _VALUE_AFTER_KEY),
    (
        b"key",  # only after api_, access_, secret_, private_… ("idempotency_key" is not a secret)
        (
            r"(?i:key)" + _KEY_ENDS + r"(?i:(?<=apikey)|(?<=api[_-]key)|(?<=accesskey)|(?<=access[_-]key)"
            r"|(?<=secretkey)|(?<=secret[_-]key)|(?<=privatekey)|(?<=private[_-]key)|(?<=clientkey)"
            r"|(?<=client[_-]key)|(?<=signingkey)|(?<=signing[_-]key)|(?<=encryptionkey)"
            r"|(?<=encryption[_-]key)|(?<=masterkey)|(?<=master[_-]key)|(?<=authkey)|(?<=auth[_-]key)"
            r"|(?<=appkey)|(?<=app[_-]key))" + _VALUE_AFTER_KEY
        ),
    ),
    (
        b"authorization",  # the value of an Authorization (or Proxy-Authorization) header
        (
            r"(?:(?<![A-Za-z0-9_*-])|(?i:(?<=proxy-)))(?i:authorization)"
            r"(?P<kq>(?P<esc>\\)?[\"'])?[ \t]{0,3}[:=][ \t]{0,3}"
            rf"(?:{_DQ}|{_SQ}|(?i:{_ONE_TOKEN_SCHEMES})[ \t]{{1,3}}(?P<one>{_BARE_CREDENTIAL})"
            rf"|(?i:{_OTHER_SCHEMES})[ \t]{{1,3}}(?P<rest>[^\s=,]{{1,64}}=[^\r\n]{{0,4096}}|{_BARE_CREDENTIAL})"
            rf"|(?P<cred>{_BARE_CREDENTIAL}))"
        ),
    ),
    (b"bearer", rf"(?<![A-Za-z0-9_*-])(?i:bearer)[ \t]{{1,3}}(?P<cred>{_TOKEN_CREDENTIAL}=*)"),
    (b"basic", rf"(?<![A-Za-z0-9_*-])(?i:basic)[ \t]{{1,3}}(?P<cred>{_TOKEN_CREDENTIAL}=*)"),
)
_DENSE = 100  # a word every 100 characters or closer: scan with the pattern itself
_KEY_IS_SECRET = re.compile(
    r"(?:pass(?:word|wd|phrase)|pwd|secret|token"
    r"|(?:api|access|secret|private|client|signing|encryption|master|auth|app)[_-]?key)\Z",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """An environment variable name that says its value is a secret."""
    return bool(_SECRET_ENV_NAME.search(name))


def is_secret_key(key: str) -> bool:
    """A ``key`` of a key=value pair (or a JSON field) whose value is a secret: it ends in
    password, token, secret, api_key… ("db_password", "access_token"; not "max_tokens",
    "idempotency_key")."""
    return bool(_KEY_IS_SECRET.search(key))


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they are secrets, longest first."""
    env = os.environ if env is None else env
    return _usable(v for k, v in env.items() if is_secret_name(k))


def _usable(values: Iterable[str]) -> list[str]:
    found = {v for v in values if len(v) >= MIN_SECRET_LENGTH and v.lower() not in _NOT_SECRETS and MASK not in v}
    return sorted(found, key=len, reverse=True)


def _url_spans(text: str) -> list[tuple[int, int]]:
    return [found.span("secret") for found in _USERINFO.finditer(text)]


def _word_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the secrets that follow a secret word (see ``_WORDS``)."""
    lowered = text.encode("ascii", "replace").lower()
    spans: list[tuple[int, int]] = []
    for word, source in _WORDS:
        if word not in lowered:
            continue
        pattern = _pattern(source)
        if lowered.count(word) > len(lowered) // _DENSE:
            # a text full of the word: let the engine walk it in C instead of a call per word
            spans.extend(_span(text, word, found) for found in pattern.finditer(text))
            continue
        at = lowered.find(word)
        while at >= 0:
            found = pattern.match(text, at)
            if found is None:
                at = lowered.find(word, at + len(word))
                continue
            span = _span(text, word, found)
            spans.append(span)
            at = lowered.find(word, span[1])  # a value running over later words: go on after it
    return spans


@functools.cache
def _pattern(source: str) -> re.Pattern[str]:
    return re.compile(source)


def _span(text: str, word: bytes, found: re.Match[str]) -> tuple[int, int]:
    group = found.lastgroup or ""
    start, end = found.span(group)
    if word == b"authorization" and group in ("dq", "sq", "edq", "esq"):
        scheme = _pattern(_SCHEME_PREFIX).match(text, start, end)  # keep "Bearer" readable
        start = scheme.end() if scheme and scheme.end() < end else start
    return start, end


def _literal_spans(text: str, values: Iterable[str]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for value in values:
        at = text.find(value)
        while at >= 0:
            spans.append((at, at + len(value)))
            at = text.find(value, at + len(value))
    return spans


class Masker:
    """Masks the generic patterns and ``values`` (plus, unless ``env`` is given empty, the
    secret-named variables of ``env``, default os.environ). Build once, use on many texts."""

    def __init__(self, values: Iterable[str] = (), env: Mapping[str, str] | None = None) -> None:
        self.values = _usable([*values, *secret_values(env)])

    def text(self, text: str) -> str:
        """``text`` with every secret replaced by ***; idempotent, linear in ``len(text)``."""
        for _ in range(4):
            # Until nothing changes: a mask can join what was around a secret into a new
            # match ("password: correct horse=x" with the env value "correct horse").
            masked = self._once(text)
            if masked == text:
                break
            text = masked
        return text

    def value(self, value: Any) -> Any:
        """Every string inside a JSON-like value masked; a field named like a secret
        ("password", "api_key") has its whole value masked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {
                k: MASK if isinstance(k, str) and is_secret_key(k) and _maskable(v) else self.value(v)
                for k, v in value.items()
            }
        return value

    def _once(self, text: str) -> str:
        spans = [*_url_spans(text), *_word_spans(text), *_literal_spans(text, self.values)] if text else []
        if not spans:
            return text
        spans.sort()
        out: list[str] = []
        pos = 0
        for start, end in spans:
            if start < pos or (start == pos and out):
                pos = max(pos, end)  # overlaps or touches the mask before it: extend that one
                continue
            out.append(text[pos:start])
            out.append(MASK)
            pos = end
        out.append(text[pos:])
        return "".join(out)


def _maskable(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool) and value != ""


def mask_secrets(text: str, env: Mapping[str, str] | None = None, values: Iterable[str] = ()) -> str:
    """``text`` with URL passwords, Authorization values, bearer tokens, secret key=value
    pairs, secret env values (of ``env``, default os.environ) and ``values`` replaced by ***."""
    return Masker(values, env).text(text)


def mask_value(value: Any, env: Mapping[str, str] | None = None, values: Iterable[str] = ()) -> Any:
    """Mask secrets in every string inside a JSON-like value."""
    return Masker(values, env).value(value)


def _split_dsn(dsn: str) -> tuple[str, str, str] | None:
    """(``scheme://user:``, password, ``@host…``) of a URL-style DSN as written, even when it
    is not a valid URL (a space or an unencoded @ in the password): the password runs from
    ``user:`` to the last @ before the host's path; None without a password."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        return None
    at = -1
    for index, char in enumerate(rest):
        if char == "@":
            at = index
        elif char in "/?#" and at >= 0:
            break
    user, colon, password = rest[: max(at, 0)].partition(":")
    if at < 0 or not colon or not password:
        return None
    return f"{scheme}://{user}:", password, rest[at:]


def dsn_passwords(dsn: str) -> list[str]:
    """The password of a URL-style DSN as written (see ``_split_dsn``), decoded too, and its
    pieces after each @ followed by their @ (a parser that splits at the first @ reports the
    rest as the host name)."""
    split = _split_dsn(dsn)
    if split is None:
        return []
    from urllib.parse import unquote

    password = split[1]
    found = [password, unquote(password), *(f"{piece}@" for piece in password.split("@")[1:] if piece)]
    return list(dict.fromkeys(found))


def mask_dsn(dsn: str, text: str | None = None) -> str:
    """``text`` (default: the DSN itself) with the DSN's password masked wherever it appears,
    however malformed the DSN (a password shorter than 4 characters only inside the DSN), and
    every generic secret pattern too."""
    out = dsn if text is None else text
    split = _split_dsn(dsn)
    if split is not None:
        head, _, tail = split
        out = out.replace(dsn, f"{head}{MASK}{tail}")
        for password in sorted(dsn_passwords(dsn), key=len, reverse=True):
            if password.endswith("@"):
                out = out.replace(password, f"{MASK}@")
            elif len(password) >= MIN_SECRET_LENGTH:
                out = out.replace(password, MASK)
    return mask_secrets(out)
