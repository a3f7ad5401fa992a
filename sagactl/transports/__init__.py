"""Transports by endpoint type; each module (and its library) loads only when a step uses it."""

from __future__ import annotations

from collections.abc import Mapping

from sagactl.config import AwsSettings
from sagactl.definition import Endpoint
from sagactl.errors import UsageError
from sagactl.placeholders import Context, resolve
from sagactl.transports.base import Reply, Request, Status, Transport


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


__all__ = ["Reply", "Request", "Status", "Transport", "open_transport"]
