"""Whether a definition's endpoints can be reached, without sending them anything: http by a
TCP connect, sqs by asking for the queue (one attempt, no retries), exec by finding the
program. Used by ``doctor`` and by ``stats --steps`` (SQS message retention)."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sagactl.config import AwsSettings
from sagactl.definitions.model import Endpoint
from sagactl.errors import NotFoundError, SagactlError, UnavailableError
from sagactl.masking import mask_secrets

CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class Probe:
    """What one check found: ``ok``, and in a few words what (or what went wrong)."""

    ok: bool
    detail: str
    unreachable: bool = False  # a dependency did not answer (not a configuration problem)
    attributes: dict[str, str] = field(default_factory=dict)


def resolved(endpoint: Endpoint, env: Mapping[str, str]) -> dict[str, Any]:
    """The endpoint's settings with ``${env.…}`` resolved (MissingValueError when unset)."""
    from sagactl.definitions.placeholders import Context, resolve

    config: dict[str, Any] = resolve(endpoint.config, Context(saga_id="", input=None, env=env))
    return config


def tcp_probe(url: str, timeout: float = CONNECT_TIMEOUT) -> Probe:
    """A TCP connection to the URL's host and port, closed at once (nothing sent)."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return Probe(False, f"invalid port in {mask_secrets(url)}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Probe(False, f"not an http(s) URL: {mask_secrets(url)}")
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        return Probe(False, f"cannot connect to {parts.hostname}:{port}: {why}", unreachable=True)
    return Probe(True, f"{parts.hostname}:{port} accepts connections")


def exec_probe(config: Mapping[str, Any], base_dir: str, env: Mapping[str, str]) -> Probe:
    """The program an exec endpoint runs exists and is executable (as the transport starts it:
    from the definition's directory, or ``cwd:`` below it; on $PATH when it has no slash)."""
    command = config.get("command")
    shell = bool(config.get("shell", False))
    try:
        argv = shlex.split(command) if isinstance(command, str) else [str(c) for c in command or []]
    except ValueError as exc:
        return Probe(False, f"cannot split the command: {exc}")
    if shell:
        argv = ["/bin/sh"]
    if not argv:
        return Probe(False, "no command")
    program = argv[0]
    cwd = Path(base_dir) / str(config.get("cwd") or "")
    if "/" in program:
        path = cwd / program
        if path.is_file() and os.access(path, os.X_OK):
            return Probe(True, f"{program} is executable")
        return Probe(False, f"{program} not found or not executable in {cwd}")
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found:
        return Probe(True, f"{program} is {found}")
    return Probe(False, f"{program} not found on PATH")


def sqs_settings(config: Mapping[str, Any], aws: AwsSettings) -> AwsSettings:
    """The AWS settings an sqs endpoint uses: its own region and endpoint_url over the resolved."""
    return AwsSettings(
        region=config.get("region") or aws.region,
        profile=aws.profile,
        endpoint_url=config.get("endpoint_url") or aws.endpoint_url,
    )


class QueueProber:
    """Asks SQS about queues, once per queue and settings, with one client per settings (a
    boto3 client costs more to make than a call): no retries, so an unreachable SQS answers
    at once; ``attributes`` of a queue that exists hold MessageRetentionPeriod and the rest."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = {**env, "AWS_MAX_ATTEMPTS": "1"}
        self.clients: dict[AwsSettings, Any] = {}
        self.answers: dict[tuple[str, AwsSettings], Probe] = {}

    def client(self, aws: AwsSettings) -> Any:
        from sagactl.aws import sqs_client

        if aws not in self.clients:
            self.clients[aws] = sqs_client(aws, env=self.env)
        return self.clients[aws]

    def queue(self, queue: str, aws: AwsSettings) -> Probe:
        if (queue, aws) not in self.answers:
            self.answers[(queue, aws)] = self._ask(queue, aws)
        return self.answers[(queue, aws)]

    def _ask(self, queue: str, aws: AwsSettings) -> Probe:
        from sagactl.aws import resolve_queue

        try:
            ref = resolve_queue(self.client(aws), queue, attributes=True)
        except NotFoundError:
            return Probe(False, f"queue {queue} does not exist")
        except UnavailableError as exc:
            return Probe(False, mask_secrets(exc.message), unreachable=True)
        except SagactlError as exc:
            return Probe(False, mask_secrets(exc.message))
        return Probe(True, f"queue {ref.name} exists", attributes=dict(ref.attributes))

    def sqs(self, aws: AwsSettings) -> Probe:
        """SQS answers a ListQueues at the resolved endpoint."""
        from sagactl.aws import sqs_errors

        try:
            client = self.client(aws)
            with sqs_errors("ListQueues", client):
                client.list_queues(MaxResults=1)
        except UnavailableError as exc:
            return Probe(False, mask_secrets(exc.message), unreachable=True)
        except SagactlError as exc:
            return Probe(False, mask_secrets(exc.message))
        return Probe(True, f"{client.meta.endpoint_url} answers")


@dataclass(frozen=True, slots=True)
class AwsIdentity:
    """What boto3 resolves for these settings: the region, and the name of the botocore
    credential provider that found credentials (``env``, ``shared-credentials-file``,
    ``assume-role``, ``iam-role``, ``sso``…); never the credentials themselves."""

    region: str | None
    method: str | None
    problem: str | None = None


def aws_identity(aws: AwsSettings) -> AwsIdentity:
    """The region and credential source boto3's standard chain resolves for ``aws``."""
    import boto3
    import botocore.exceptions

    try:
        session = boto3.session.Session(profile_name=aws.profile, region_name=aws.region)
        credentials = session.get_credentials()
    except botocore.exceptions.ProfileNotFound:
        return AwsIdentity(None, None, f"AWS profile '{aws.profile}' not found")
    except botocore.exceptions.BotoCoreError as exc:
        return AwsIdentity(None, None, mask_secrets(" ".join(str(exc).split())))
    method = getattr(credentials, "method", None) if credentials is not None else None
    return AwsIdentity(session.region_name, str(method) if method else None)
