"""sagactl.aws: client settings, queue resolution (ARNs honoured: region and account) and error
mapping, against moto over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sagactl.aws import QueueRef, map_error, queue_name, resolve_queue, sqs_client
from sagactl.cli import app
from sagactl.config import AwsSettings
from sagactl.errors import ExitCode, NotFoundError, UnavailableError, UsageError
from tests.support.sqs import Sqs

runner = CliRunner()


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_import_and_help_do_not_load_boto3() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from sagactl.cli import app\n"
        "import sagactl.aws, sagactl.dlq.peek, sagactl.dlq.redrive\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "for name in ('redrive', 'dlq'):\n"
        "    assert CliRunner().invoke(app, [name, '--help']).exit_code == 0\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_client_uses_adaptive_retries_short_timeouts_and_the_endpoint(aws_env: dict[str, str]) -> None:
    client = sqs_client(AwsSettings(region="us-east-1", endpoint_url=aws_env["AWS_ENDPOINT_URL_SQS"]))
    config = client.meta.config
    assert config.retries == {"mode": "adaptive"}  # attempts: AWS_MAX_ATTEMPTS / profile, else botocore's
    assert config.connect_timeout == 5.0
    assert config.read_timeout == 30.0  # above the 20 s long poll
    assert client.meta.endpoint_url == aws_env["AWS_ENDPOINT_URL_SQS"]
    assert client.meta.region_name == "us-east-1"


def test_aws_max_attempts_is_honoured(aws_env: dict[str, str]) -> None:
    client = sqs_client(AwsSettings(), env={"AWS_MAX_ATTEMPTS": "7"})
    assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 7}


@pytest.mark.slow
def test_queue_resolves_from_name_url_and_arn(sqs: Sqs) -> None:
    queue = sqs.queue("resolve")
    client = sqs_client(AwsSettings())
    by_name = resolve_queue(client, queue.name)
    by_url = resolve_queue(client, queue.url)
    by_arn = resolve_queue(client, queue.arn)
    assert by_name.url == by_url.url == by_arn.url == queue.url
    assert by_name.arn == queue.arn
    assert by_name.name == by_url.name == by_arn.name == queue.name
    assert not by_name.fifo
    fifo = sqs.queue("resolve", fifo=True)
    assert resolve_queue(client, fifo.name).fifo
    assert QueueRef(url="u", name="x.fifo").fifo


def test_queue_name_from_every_form() -> None:
    assert queue_name("orders-dlq") == "orders-dlq"
    assert queue_name("https://sqs.us-east-1.amazonaws.com/123456789012/orders-dlq/") == "orders-dlq"
    assert queue_name("arn:aws:sqs:us-east-1:123456789012:orders-dlq") == "orders-dlq"


def test_missing_queue_is_not_found(sqs: Sqs) -> None:
    client = sqs_client(AwsSettings())
    with pytest.raises(NotFoundError) as caught:
        resolve_queue(client, "no-such-queue")
    assert caught.value.exit_code == ExitCode.USAGE
    assert "no-such-queue" in caught.value.one_line()
    result = runner.invoke(app, ["dlq", "list", "no-such-queue"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("sagactl: error: SQS queue 'no-such-queue' does not exist at http://127.0.0.1:")
    assert result.stderr.count("\n") == 1


@pytest.mark.slow
def test_unreachable_endpoint_exits_4_with_one_line(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    result = runner.invoke(app, ["dlq", "list", "orders-dlq", "--endpoint-url", endpoint])
    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr == (
        f"sagactl: error: cannot reach SQS at {endpoint} (EndpointConnectionError); check --endpoint-url /"
        " AWS_ENDPOINT_URL_SQS, --region and the network\n"
    )
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # no retries: the same answer, sooner
    redrive = runner.invoke(app, ["redrive", "--dlq", "orders-dlq", "--endpoint-url", endpoint, "-o", "json"])
    assert redrive.exit_code == 4
    assert redrive.stderr.count("\n") == 1 and "cannot reach SQS" in redrive.stderr


def test_no_credentials_exits_4(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = runner.invoke(app, ["dlq", "list", "orders-dlq"])
    assert result.exit_code == 4
    assert result.stderr.startswith("sagactl: error: no usable AWS credentials for SQS")
    assert "--profile" in result.stderr and result.stderr.count("\n") == 1


def test_no_region_exits_4(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = runner.invoke(app, ["dlq", "list", "orders-dlq"])
    assert result.exit_code == 4
    assert result.stderr == (
        "sagactl: error: no AWS region configured for SQS; pass --region, set AWS_REGION,"
        " or set aws.region in sagactl.yaml\n"
    )


def test_unknown_profile_is_a_usage_error(aws_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["dlq", "list", "orders-dlq", "--profile", "nope"])
    assert result.exit_code == 2
    assert result.stderr.startswith("sagactl: error: AWS profile 'nope' not found")


@pytest.mark.slow
def test_region_precedence_flag_over_env_over_config(sqs: Sqs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto keeps queues per region: the queue exists only in us-east-1, so which region was
    used shows in whether it is found."""
    queue = sqs.queue("region")
    config = tmp_path / "sagactl.yaml"
    config.write_text("aws:\n  region: eu-west-1\n")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    base = ["dlq", "list", queue.name, "--wait-time", "0", "--config", str(config)]
    assert runner.invoke(app, base).exit_code == 2  # config: eu-west-1
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert runner.invoke(app, base).exit_code == 0  # env beats config
    assert runner.invoke(app, [*base, "--region", "eu-west-1"]).exit_code == 2  # flag beats env


def test_endpoint_from_config_file(sqs: Sqs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = sqs.queue("cfg")
    config = tmp_path / "sagactl.yaml"
    config.write_text(f"aws:\n  endpoint_url: {sqs.endpoint}\n  region: us-east-1\n")
    monkeypatch.delenv("AWS_ENDPOINT_URL_SQS")
    result = runner.invoke(app, ["dlq", "list", queue.name, "--wait-time", "0", "--config", str(config)])
    assert result.exit_code == 0, result.stderr


def test_error_mapping_of_client_errors() -> None:
    from botocore.exceptions import ClientError

    def error(code: str, status: int) -> ClientError:
        return ClientError(
            {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
        )

    assert isinstance(map_error(error("AWS.SimpleQueueService.NonExistentQueue", 400), "'q'"), NotFoundError)
    assert isinstance(map_error(error("AccessDenied", 403), "'q'"), UnavailableError)
    assert isinstance(map_error(error("RequestThrottled", 400), "'q'"), UnavailableError)
    assert isinstance(map_error(error("InternalError", 500), "'q'"), UnavailableError)
    assert isinstance(map_error(error("InvalidParameterValue", 400), "'q'"), UsageError)
    assert map_error(ValueError("not botocore"), "'q'") is None


# -- a queue ARN names one queue: its region and account are honoured --------------------------


def test_an_arn_in_another_region_is_refused_not_replaced_by_a_namesake(sqs: Sqs, sqs_elsewhere: Sqs) -> None:
    here = sqs.queue("twin")
    there = sqs_elsewhere.queue(name=here.name)
    assert there.arn != here.arn and there.arn.split(":")[3] == "eu-west-1"
    client = sqs_client(AwsSettings())  # us-east-1
    for attributes in (True, False):
        with pytest.raises(UsageError) as caught:
            resolve_queue(client, there.arn, attributes=attributes)
        assert caught.value.one_line() == (
            f"queue {there.arn} is in region eu-west-1, but SQS is reached in region us-east-1;"
            " pass --region eu-west-1 (or set the endpoint's region) to use that queue"
        )
    elsewhere = sqs_client(AwsSettings(region="eu-west-1"))
    assert resolve_queue(elsewhere, there.arn).arn == there.arn
    assert resolve_queue(elsewhere, there.arn, attributes=False).arn == there.arn


@pytest.mark.slow
def test_an_arn_of_another_account_is_refused(sqs: Sqs) -> None:
    queue = sqs.queue("owned")
    foreign = queue.arn.replace(":123456789012:", ":999999999999:")
    with pytest.raises(UsageError) as caught:  # NotFoundError is a UsageError: exit 2 either way
        resolve_queue(sqs_client(AwsSettings()), foreign)
    assert caught.value.exit_code == ExitCode.USAGE
    assert foreign in caught.value.one_line() or queue.name in caught.value.one_line()


def test_an_aws_queue_url_in_another_region_is_refused(aws_env: dict[str, str]) -> None:
    client = sqs_client(AwsSettings())  # us-east-1; nothing is sent
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders-dlq"
    with pytest.raises(UsageError, match="is in region eu-west-1, but SQS is reached in region us-east-1"):
        resolve_queue(client, url)
