"""The one place that builds SQS clients, resolves queue arguments and translates botocore errors.

Clients use the standard credential chain (env, profile, SSO, instance role), the region and
endpoint from flag > env > sagactl.yaml > the profile, botocore's adaptive retry mode (client-side
rate limiting when SQS throttles) and short connect timeouts. Every botocore failure leaves this
module as a SagactlError with one actionable line: unreachable endpoint, missing credentials or
region -> UnavailableError (exit 4); a queue that does not exist -> NotFoundError (exit 2).

boto3 and botocore are imported inside functions: importing this module costs nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sagactl.config import AwsSettings
from sagactl.errors import NotFoundError, SagactlError, UnavailableError, UsageError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0  # above the longest long poll (20 s) so a quiet queue is not a timeout
RETRY_MODE = "adaptive"

_NO_QUEUE_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"})
_AUTH_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSecurity",
        "MissingAuthenticationToken",
        "IncompleteSignature",
        "AccessDenied",
        "AccessDeniedException",
        "KMS.AccessDeniedException",
    }
)
_THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
    }
)
_ENDPOINT_HINT = "check --endpoint-url / AWS_ENDPOINT_URL_SQS, --region and the network"
_CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, pass --profile (or AWS_PROFILE), or run 'aws sso login'"
)


@dataclass(frozen=True, slots=True)
class QueueRef:
    """A resolved queue: its URL (what every call takes), name, ARN when fetched, and type."""

    url: str
    name: str
    arn: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def fifo(self) -> bool:
        return self.name.endswith(".fifo") or self.attributes.get("FifoQueue") == "true"

    def count(self, attribute: str) -> int:
        """An integer queue attribute (e.g. ApproximateNumberOfMessages); 0 when absent."""
        try:
            return int(self.attributes.get(attribute, "0"))
        except ValueError:
            return 0


def sqs_client(aws: AwsSettings, *, pool_size: int = 10, env: Mapping[str, str] | None = None) -> SQSClient:
    """An SQS client for ``aws`` (standard credential chain, adaptive retries, short timeouts).

    ``pool_size`` bounds concurrent HTTP connections (one per batch in flight). Retry attempts
    follow AWS_MAX_ATTEMPTS / the profile's max_attempts, else botocore's default (3).
    """
    import boto3
    import botocore.config
    import botocore.exceptions

    env = os.environ if env is None else env
    retries: dict[str, Any] = {"mode": RETRY_MODE}
    attempts = env.get("AWS_MAX_ATTEMPTS", "").strip()
    if attempts.isdigit() and int(attempts) > 0:
        retries["total_max_attempts"] = int(attempts)
    config = botocore.config.Config(
        retries=retries,  # type: ignore[arg-type]
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        max_pool_connections=max(10, pool_size),
        user_agent_extra="sagactl",
    )
    try:
        session = boto3.session.Session(profile_name=aws.profile, region_name=aws.region)
        return session.client("sqs", endpoint_url=aws.endpoint_url, config=config)
    except botocore.exceptions.ProfileNotFound as exc:
        raise UsageError(
            f"AWS profile '{aws.profile}' not found", hint="check --profile / AWS_PROFILE and ~/.aws/config"
        ) from exc
    except botocore.exceptions.NoRegionError as exc:
        raise UnavailableError(
            "no AWS region configured for SQS",
            hint="pass --region, set AWS_REGION, or set aws.region in sagactl.yaml",
        ) from exc
    except ValueError as exc:  # InvalidRegionError, "Invalid endpoint: …"
        raise UsageError(_one_line(exc), hint="check --region and --endpoint-url") from exc


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _endpoint(client: Any) -> str:
    try:
        return str(client.meta.endpoint_url)
    except AttributeError:
        return "SQS"


def map_error(exc: BaseException, where: str, endpoint: str = "SQS") -> SagactlError | None:
    """The SagactlError for a botocore failure while working on ``where``; None if not botocore's."""
    import botocore.exceptions as bce

    if isinstance(exc, SagactlError):
        return exc
    if isinstance(exc, bce.StubResponseError):
        return None  # a test's stub complaining: let it show
    if isinstance(exc, bce.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        query_code = str(error.get("QueryErrorCode", ""))
        message = _one_line(Exception(error.get("Message") or code or exc))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        operation = exc.operation_name
        if code in _NO_QUEUE_CODES or query_code in _NO_QUEUE_CODES:
            return NotFoundError(
                f"SQS queue {where} does not exist at {endpoint}",
                hint="check the queue name or URL, --region and --endpoint-url",
            )
        if code in _AUTH_CODES:
            return UnavailableError(
                f"SQS at {endpoint} refused the credentials for {operation} on {where}: {code}: {message}",
                hint="check the credentials, --profile and the IAM policy",
            )
        if code in _THROTTLE_CODES:
            return UnavailableError(
                f"SQS at {endpoint} kept throttling {operation} on {where} after retries",
                hint="lower --rate or set AWS_MAX_ATTEMPTS higher",
            )
        if status >= 500 or status == 0:
            return UnavailableError(
                f"SQS at {endpoint} failed {operation} on {where}: {code or status}: {message}",
                hint="retry later",
            )
        return UsageError(f"SQS rejected {operation} on {where}: {code}: {message}")
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return UnavailableError(f"no usable AWS credentials for SQS ({_one_line(exc)})", hint=_CREDENTIALS_HINT)
    if isinstance(exc, bce.CredentialRetrievalError | bce.TokenRetrievalError | bce.SSOError):
        return UnavailableError(f"cannot load AWS credentials: {_one_line(exc)}", hint=_CREDENTIALS_HINT)
    if isinstance(exc, bce.NoRegionError):
        return UnavailableError(
            "no AWS region configured for SQS",
            hint="pass --region, set AWS_REGION, or set aws.region in sagactl.yaml",
        )
    if isinstance(exc, bce.ProfileNotFound):
        return UsageError(f"{_one_line(exc)}", hint="check --profile / AWS_PROFILE and ~/.aws/config")
    if isinstance(exc, bce.ParamValidationError):
        return UsageError(f"invalid request for {where}: {_one_line(exc)}")
    if isinstance(exc, bce.HTTPClientError | bce.ConnectionError):
        return UnavailableError(f"cannot reach SQS at {endpoint} ({type(exc).__name__})", hint=_ENDPOINT_HINT)
    if isinstance(exc, bce.BotoCoreError):
        return UnavailableError(f"SQS at {endpoint}: {_one_line(exc)}", hint=_ENDPOINT_HINT)
    return None


@contextmanager
def sqs_errors(where: str, client: Any = None) -> Iterator[None]:
    """Turn botocore failures inside the block into SagactlErrors about ``where``."""
    try:
        yield
    except Exception as exc:
        mapped = map_error(exc, where, _endpoint(client) if client is not None else "SQS")
        if mapped is None or mapped is exc:
            raise
        raise mapped from exc


def queue_name(ref: str) -> str:
    """The queue name in a name, URL or ARN."""
    text = ref.strip().rstrip("/")
    if text.startswith("arn:"):
        return text.rsplit(":", 1)[-1]
    return text.rsplit("/", 1)[-1]


# https://sqs.REGION.amazonaws.com[.cn]/ACCOUNT/NAME and the legacy https://REGION.queue.amazonaws.com/…
_AWS_QUEUE_URL = re.compile(
    r"^https?://(?:sqs\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
    r"|(?P<legacy>[a-z0-9-]+)\.queue\.amazonaws\.com)/"
)


def _client_region(client: Any) -> str | None:
    try:
        region = client.meta.region_name
    except AttributeError:
        return None
    return str(region) if region else None


def _same_region(client: Any, ref: str, region: str | None) -> None:
    """Refuse a queue named in another region than the client's: SQS would address the queue
    of the same name in the client's region instead (or none)."""
    used = _client_region(client)
    if region and used and region != used:
        raise UsageError(
            f"queue {ref} is in region {region}, but SQS is reached in region {used}",
            hint=f"pass --region {region} (or set the endpoint's region) to use that queue",
        )


def resolve_queue(client: SQSClient, ref: str, *, attributes: bool = True) -> QueueRef:
    """A queue given as a name, URL or ARN; with ``attributes`` also its ARN, type and depth.

    An ARN is honoured exactly: its region must be the client's and the queue found (in its
    account, QueueOwnerAWSAccountId) must have that very ARN, else UsageError (exit 2) rather
    than a queue of the same name elsewhere; an AWS queue URL's region is checked the same way.
    Raises NotFoundError when the queue does not exist, UnavailableError when SQS is unreachable.
    """
    text = ref.strip()
    if not text:
        raise UsageError("empty queue name", hint="pass a queue name or URL")
    name = queue_name(text)
    arn: str | None = None
    with sqs_errors(f"'{name}'", client):
        if text.startswith(("http://", "https://")):
            host = _AWS_QUEUE_URL.match(text)
            _same_region(client, text, host and (host.group("region") or host.group("legacy")))
            url = text
        elif text.startswith("arn:"):
            parts = text.split(":")
            if len(parts) != 6 or parts[2] != "sqs" or not all(parts[3:]):
                raise UsageError(f"'{text}' is not an SQS queue ARN", hint="pass a queue name or URL")
            _same_region(client, text, parts[3])
            arn = text
            url = client.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        else:
            url = client.get_queue_url(QueueName=text)["QueueUrl"]
        if not attributes and arn is None:
            return QueueRef(url=url, name=name)
        wanted: Any = ["All"] if attributes else ["QueueArn"]
        found = client.get_queue_attributes(QueueUrl=url, AttributeNames=wanted).get("Attributes", {})
    if arn is not None and found.get("QueueArn") != arn:
        raise UsageError(
            f"queue {arn} resolved to {found.get('QueueArn') or url}, another queue",
            hint="check the ARN's account and region, --region and --profile",
        )
    if not attributes:
        return QueueRef(url=url, name=name, arn=arn)
    return QueueRef(
        url=url, name=name, arn=found.get("QueueArn"), attributes={str(k): str(v) for k, v in found.items()}
    )


def queue_arn(client: SQSClient, queue: QueueRef) -> str:
    """The queue's ARN, fetched when ``queue`` was resolved without attributes."""
    if queue.arn:
        return queue.arn
    with sqs_errors(f"'{queue.name}'", client):
        found = client.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["QueueArn"])
    return str(found.get("Attributes", {}).get("QueueArn", ""))
