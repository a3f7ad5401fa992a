"""Dead-lettered messages as sagactl reads them: the saga fields of a received SQS message,
the ``--saga-id``/``--step`` filter, and grouping for ``dlq list --group-by``.

saga_id, step_name, command and error come from message attributes, else from the JSON body.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sagactl.codec import compact_json
from sagactl.errors import UsageError
from sagactl.models import iso

BATCH = 10  # SQS's batch limit for receive, send, delete and visibility changes
REDRIVE_COUNT_ATTRIBUTE = "sagactl_redrive_count"
_FIELDS = ("saga_id", "step_name", "command", "error")


@dataclass(frozen=True, slots=True)
class DlqMessage:
    """One received message: what SQS returned plus the saga fields read from it."""

    message_id: str
    receipt_handle: str
    body: str
    system: dict[str, str]  # SQS system attributes (SentTimestamp, ApproximateReceiveCount, …)
    attributes: dict[str, dict[str, Any]]  # message attributes exactly as received
    md5_of_body: str | None = None
    saga_id: str | None = None
    step_name: str | None = None
    command: str | None = None
    error: str | None = None

    @property
    def receive_count(self) -> int:
        return _int(self.system.get("ApproximateReceiveCount"))

    @property
    def sent_at(self) -> datetime | None:
        millis = self.system.get("SentTimestamp")
        if not millis or not millis.isdigit():
            return None
        return datetime.fromtimestamp(int(millis) / 1000, UTC)

    @property
    def group_id(self) -> str | None:
        return self.system.get("MessageGroupId")

    @property
    def redrive_count(self) -> int:
        """How many times sagactl has redriven this message (its counter attribute)."""
        value = self.attributes.get(REDRIVE_COUNT_ATTRIBUTE) or {}
        return _int(value.get("StringValue"))

    @property
    def trace(self) -> tuple[str | None, str | None]:
        """The W3C trace context the message carries (``traceparent``, ``tracestate``
        attributes: the saga step's span, when the sender traced), or Nones."""
        found = [(self.attributes.get(name) or {}).get("StringValue") for name in ("traceparent", "tracestate")]
        return tuple(v if isinstance(v, str) else None for v in found)  # type: ignore[return-value]

    def age_seconds(self, now: datetime) -> float | None:
        sent = self.sent_at
        return None if sent is None else max(0.0, (now - sent).total_seconds())

    def body_matches_md5(self, md5: str | None) -> bool:
        """True when ``md5`` (as SQS reports it) is the MD5 of this body's UTF-8 bytes."""
        return md5 is None or hashlib.md5(self.body.encode("utf-8")).hexdigest() == md5

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """The ``dlq list`` JSON item (docs/output.md); bodies whole."""
        now = now or datetime.now(UTC)
        return {
            "message_id": self.message_id,
            "saga_id": self.saga_id,
            "step_name": self.step_name,
            "command": self.command,
            "error": self.error,
            "receive_count": self.receive_count,
            "redrive_count": self.redrive_count,
            "sent_at": iso(self.sent_at),
            "age_seconds": _round(self.age_seconds(now)),
            "group_id": self.group_id,
            "source_arn": self.system.get("DeadLetterQueueSourceArn"),
            "attributes": {name: _attribute_json(value) for name, value in sorted(self.attributes.items())},
            "body": self.body,
        }


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _attribute_json(value: dict[str, Any]) -> dict[str, Any]:
    """A message attribute as JSON: Binary values base64-encoded (and said so)."""
    out: dict[str, Any] = {"data_type": value.get("DataType")}
    if "StringValue" in value:
        out["string_value"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binary_value_base64"] = base64.b64encode(bytes(value["BinaryValue"])).decode("ascii")
    return out


def _text_attribute(attributes: dict[str, dict[str, Any]], name: str) -> str | None:
    value = attributes.get(name)
    if not value or "StringValue" not in value:
        return None
    return str(value["StringValue"])


def _body_field(doc: dict[str, Any] | None, name: str) -> str | None:
    if doc is None or doc.get(name) is None:
        return None
    value = doc[name]
    if isinstance(value, str):
        return value
    return compact_json(value)


def _json_object(body: str) -> dict[str, Any] | None:
    if not body.lstrip().startswith("{"):
        return None
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def parse_message(raw: Any) -> DlqMessage:
    """A received SQS message as a DlqMessage (attributes first, JSON body as the fallback)."""
    body = str(raw.get("Body", ""))
    attributes = {str(k): dict(v) for k, v in (raw.get("MessageAttributes") or {}).items()}
    doc = _json_object(body)
    found = {name: _text_attribute(attributes, name) or _body_field(doc, name) for name in _FIELDS}
    return DlqMessage(
        message_id=str(raw.get("MessageId", "")),
        receipt_handle=str(raw.get("ReceiptHandle", "")),
        body=body,
        system={str(k): str(v) for k, v in (raw.get("Attributes") or {}).items()},
        attributes=attributes,
        md5_of_body=raw.get("MD5OfBody"),
        **found,
    )


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """``--saga-id`` (None: any saga) and ``--step``."""

    saga_ids: frozenset[str] | None = None
    step: str | None = None

    def validate(self) -> None:
        """An empty ID list (``--saga-id -`` with nothing on stdin) is a usage error, never
        "no messages" or a redrive that quietly moves nothing."""
        if self.saga_ids is not None and not self.saga_ids:
            raise UsageError(
                "no IDs given: --saga-id named no saga (nothing on stdin for '-')",
                hint="pipe saga IDs in (e.g. 'sagactl list --stuck -q | …') or drop --saga-id",
            )

    def matches(self, message: DlqMessage) -> bool:
        if self.saga_ids is not None and message.saga_id not in self.saga_ids:
            return False
        return self.step is None or message.step_name == self.step


class GroupBy(StrEnum):
    SAGA = "saga"
    STEP = "step"
    ERROR = "error"


_GROUP_FIELD = {GroupBy.SAGA: "saga_id", GroupBy.STEP: "step_name", GroupBy.ERROR: "error"}


@dataclass(frozen=True, slots=True)
class MessageGroup:
    key_field: str
    key: str | None
    messages: tuple[DlqMessage, ...]

    def to_dict(self) -> dict[str, Any]:
        sent = [m.sent_at for m in self.messages if m.sent_at is not None]
        return {
            self.key_field: self.key,
            "count": len(self.messages),
            "oldest_sent_at": iso(min(sent)) if sent else None,
            "newest_sent_at": iso(max(sent)) if sent else None,
            "max_receive_count": max((m.receive_count for m in self.messages), default=0),
            "saga_ids": sorted({m.saga_id for m in self.messages if m.saga_id}),
            "step_names": sorted({m.step_name for m in self.messages if m.step_name}),
            "message_ids": [m.message_id for m in self.messages],
        }


def group_messages(messages: Iterable[DlqMessage], by: GroupBy) -> list[MessageGroup]:
    """Messages grouped by saga, step or error; biggest group first, then by key."""
    key_field = _GROUP_FIELD[by]
    groups: dict[str | None, list[DlqMessage]] = {}
    for message in messages:
        groups.setdefault(getattr(message, key_field), []).append(message)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0] or ""))
    return [MessageGroup(key_field, key, tuple(items)) for key, items in ordered]
