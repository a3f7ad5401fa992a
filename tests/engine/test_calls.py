"""engine.calls.Prepared: definitions and maskers built once per definition, and still right
when the snapshot or the environment is another."""

from __future__ import annotations

import json

from sagactl.definitions.validation import check_text
from sagactl.engine.calls import Prepared

SAGA = """\
saga: Prepared
endpoints:
  api:
    type: http
    url: "http://svc:${{env.SVC_PHRASE}}@127.0.0.1:9"
    headers: {{X-Credential: "${{env.CREDENTIAL}}"}}
steps:
  - {{name: {step}, endpoint: api, action: {{path: /go}}}}
"""


def snapshot(step: str) -> dict[str, object]:
    definition = check_text(SAGA.format(step=step), "prepared.yaml", ".").definitions[0]
    return json.loads(json.dumps(definition.snapshot()))  # as the saga log gives it back


def test_a_snapshot_is_built_once_and_another_apart() -> None:
    prepared = Prepared()
    first = prepared.definition(snapshot("reserve"))
    assert prepared.definition(snapshot("reserve")) is first
    other = prepared.definition(snapshot("charge"))
    assert other is not first and [s.name for s in other.steps] == ["charge"]


def test_the_masker_covers_the_definition_and_the_environment() -> None:
    prepared = Prepared()
    env = {"SVC_PHRASE": "phrase-9Kd1", "CREDENTIAL": "cred-7Hq2-zz", "BANK_TOKEN": "tok-55aa-bb", "HOME": "/root"}
    definition = prepared.definition(snapshot("reserve"))
    masker = prepared.masker(definition, env)
    assert prepared.masker(definition, env) is masker  # built once
    text = "phrase-9Kd1 cred-7Hq2-zz tok-55aa-bb /root"
    assert masker.text(text) == "*** *** *** /root"


def test_another_environment_builds_another_masker() -> None:
    prepared = Prepared()
    definition = prepared.definition(snapshot("reserve"))
    before = prepared.masker(definition, {"SVC_PHRASE": "phrase-9Kd1", "CREDENTIAL": "cred-7Hq2-zz"})
    after = prepared.masker(definition, {"SVC_PHRASE": "other-phrase-1", "CREDENTIAL": "cred-7Hq2-zz"})
    assert after is not before
    assert after.text("other-phrase-1 phrase-9Kd1") == "*** phrase-9Kd1"


def test_the_cache_is_bounded() -> None:
    prepared = Prepared()
    for n in range(Prepared.LIMIT * 2):
        prepared.definition(snapshot(f"step{n}"))
    assert len(prepared._built) <= Prepared.LIMIT
