"""Transports by endpoint type; each module (and its library) loads only when a step uses it.

    base.py  the Transport protocol: how the engine talks to participants, whatever the wire
    http.py  JSON over http (urllib3)
    sqs.py   a command on a queue, the answer on a reply queue (boto3)
    exec.py  a program per call, command JSON on stdin, result JSON on stdout

May import: the root leaves and sagactl.definitions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from sagactl.config import AwsSettings
from sagactl.definitions.model import Endpoint, SagaDefinition
from sagactl.definitions.placeholders import Context, resolve
from sagactl.errors import UsageError
from sagactl.transports.base import AsyncTransport, Reply, Request, Status, Transport


def open_transport(
    endpoint: Endpoint, base_dir: str, env: Mapping[str, str], aws: AwsSettings | None = None
) -> Transport:
    """A transport for ``endpoint`` with its ``${env.…}`` placeholders resolved now; ``aws``:
    the resolved AWS settings (sqs endpoints), which the endpoint's own region/endpoint_url
    override."""
    config = resolve(endpoint.config, Context(saga_id="", input=None, env=env))
    if endpoint.type == "http":
        from sagactl.transports.http import HttpTransport

        return HttpTransport(endpoint.name, config)
    if endpoint.type == "exec":
        from sagactl.transports.exec import ExecTransport

        return ExecTransport(endpoint.name, config, base_dir, env)
    if endpoint.type == "sqs":
        from sagactl.transports.sqs import SqsTransport

        return SqsTransport(endpoint.name, config, env, aws or AwsSettings())
    raise UsageError(f"endpoint {endpoint.name}: unknown transport type '{endpoint.type}'")


class _Kept:
    """A pooled transport as a driver sees it: its close() leaves it open for the next saga."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def call(self, request: Request) -> Reply:
        return self.transport.call(request)

    def close(self) -> None:
        return None


class _KeptAsync(_Kept):
    def __init__(self, transport: AsyncTransport) -> None:
        super().__init__(transport)
        self.sends = transport

    def send(self, request: Request) -> Reply | None:
        return self.sends.send(request)


class TransportPool:
    """Transports kept open across the sagas one driver thread drives (a worker): one per
    endpoint configuration (the same in every definition snapshot that names it), so its
    connections are reused: an http keep-alive pool, an SQS client with its queue URLs. A
    driver's close() of a pooled transport does nothing; ``close()`` here closes them all.
    One per thread (transports are not shared between threads)."""

    def __init__(self, open_one: Callable[[SagaDefinition, str], Transport]) -> None:
        self.open_one = open_one
        self.kept: dict[tuple[str, str, str], _Kept] = {}

    def __call__(self, definition: SagaDefinition, endpoint: str) -> Transport:
        found = definition.endpoints[endpoint]
        key = (definition.base_dir, endpoint, json.dumps([found.type, found.config], sort_keys=True, default=str))
        if key not in self.kept:
            opened = self.open_one(definition, endpoint)
            self.kept[key] = _KeptAsync(opened) if isinstance(opened, AsyncTransport) else _Kept(opened)
        return self.kept[key]

    def close(self) -> None:
        for kept in self.kept.values():
            kept.transport.close()
        self.kept.clear()


__all__ = ["Reply", "Request", "Status", "Transport", "TransportPool", "open_transport"]
