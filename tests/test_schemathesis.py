"""Schemathesis against the live daemon's journal API: requests generated from the OpenAPI
document the daemon serves (``GET /journal/v1/openapi.json``), each signed as a journal signs
it, get no 5xx, and their answers (status, content type, body) are what the document says.

The daemon is seeded first with a journal, a small roster, two linked accounts and a subject
chat, and the generated ids are drawn from those half of the time, so some requests reach
real data. One daemon serves every operation's test (module scope); each operation is fuzzed
with schema-valid data and, where it has inputs to break, with schema-violating data too
(the signature covers whatever bytes go out, so those get past it to the validation)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from clients.journal import signed_headers
from sferumd.api.openapi import document
from tests.conftest import Daemon
from tests.test_linking import add_journal
from tests.test_roster_api import SCHOOL

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Examples per operation: schema-valid ones, and fewer schema-violating ones (slower to make,
# and mostly refused at the first field). The run stays well under a minute on 2 busy cores.
MAX_EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}
ACCOUNTS = ["T-HOME", "T-HIST", "ST-1", "ST-2", "PA-1"]
LESSON = "L-FUZZ"
NDJSON = {"Accept": "application/x-ndjson"}


def _operations() -> Iterator[Any]:
    """Every operation of the document, known without a daemon: one test per operation and
    generation mode. Negative data needs a parameter or a JSON body to break (the OneRoster
    zip is any bytes); the import is also run asking for its NDJSON progress stream."""
    for path, item in document()["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            name = f"{method.upper()} {path}"
            body = op.get("requestBody", {}).get("content", {})
            modes = [GenerationMode.POSITIVE]
            if "parameters" in item or "application/json" in body:
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                yield pytest.param(method, path, mode, {}, id=f"{name}-{mode.value}")
            if "application/zip" in body:
                yield pytest.param(method, path, modes[0], NDJSON, id=f"{name}-ndjson")


class JournalSignature(requests.auth.AuthBase):
    """Signs a request as it goes on the wire: the exact body bytes and the path and query
    as sent (``PreparedRequest.path_url``), with a fresh nonce every time."""

    def __init__(self, journal: dict[str, str]):
        self.journal_id = journal["journal_id"]
        self.secret = journal["secret"]

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        assert isinstance(body, bytes), f"can't sign a streamed body: {type(body)}"
        assert r.method is not None
        r.headers.update(signed_headers(self.journal_id, self.secret, r.method, r.path_url, body))
        return r


def _signed(daemon: Daemon, sign: JournalSignature, method: str, path: str, body: Any) -> Any:
    r = requests.request(
        method,
        daemon.url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        auth=sign,
        timeout=30,
    )
    assert r.status_code < 300, (path, r.status_code, r.text)
    return r.json()


def _link(daemon: Daemon, sign: JournalSignature, account: str, role: str) -> None:
    user = daemon.add_user()
    body = {"account_id": account, "role": role, "school_id": "S1", "school_name": "Школа 1"}
    session = _signed(daemon, sign, "POST", "/journal/v1/link-sessions", body)
    token = session["url"].rsplit("/", 1)[1]
    r = requests.post(
        f"{daemon.url}/v1/link/{token}/confirm",
        headers={"Authorization": f"Bearer {user.token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("schemathesis"))
    d.start()
    yield d
    assert d.stop() == 0, d.log()
    assert "Traceback" not in d.log(), d.log()


@pytest.fixture(scope="module")
def journal(live: Daemon) -> dict[str, Any]:
    """A journal with a roster (SCHOOL), two linked accounts and one subject chat."""
    j: dict[str, Any] = add_journal(live)
    sign = JournalSignature(j)
    changes = {"delivery_id": "seed", "changes": SCHOOL}
    assert _signed(live, sign, "POST", "/journal/v1/events", changes)["rejected"] == 0
    _link(live, sign, "T-HOME", "teacher")
    _link(live, sign, "ST-1", "student")
    chat = {"teacher_id": "T-HIST", "class_id": "C-7V", "subject_id": "HIST"}
    j["chat_id"] = _signed(live, sign, "POST", "/journal/v1/subject-chats", chat)["chat_id"]
    # A lesson years ahead and its videoconference, for the videoconference operations.
    lesson = {
        "op": "upsert",
        "kind": "lesson",
        "id": LESSON,
        "version": 1,
        "data": {
            "class_id": "C-7V",
            "subject_id": "HIST",
            "teacher_id": "T-HIST",
            "start": "2040-09-03T09:00:00+03:00",
            "end": "2040-09-03T09:45:00+03:00",
        },
    }
    lessons = {"delivery_id": "lesson", "changes": [lesson]}
    assert _signed(live, sign, "POST", "/journal/v1/events", lessons)["rejected"] == 0
    vc = {"chat_id": j["chat_id"], "lesson_id": LESSON, "teacher_id": "T-HIST"}
    made = _signed(live, sign, "POST", "/journal/v1/videoconferences", vc)
    j["vc_id"] = made["videoconference_id"]
    return j


@pytest.fixture(scope="module")
def journal_api(live: Daemon, journal: dict[str, Any]) -> schemathesis.BaseSchema:
    """The document the live daemon serves, with generated ids steered half of the time to
    the seeded ones. (Example counts, derandomizing and the example database are Hypothesis
    settings on the test below.)"""
    # The import's zip body goes out as the generated bytes, like application/octet-stream.
    schemathesis.serializer.alias("application/zip", "application/octet-stream")
    half = {"probability": 0.5}
    config = schemathesis.Config.from_dict(
        {
            "base-url": live.url,
            "generation": {
                # The signature headers come from JournalSignature, never generated.
                "with-security-parameters": False,
            },
            "dictionaries": {
                "accounts": {"values": ACCOUNTS},
                "chats": {"values": [journal["chat_id"]]},
                "classes": {"values": ["C-7V"]},
                "subjects": {"values": ["HIST"]},
                "lessons": {"values": [LESSON]},
                "videoconferences": {"values": [journal["vc_id"]]},
            },
            "parameters": {
                "path.account_id": {"dictionary": "accounts", **half},
                "path.chat_id": {"dictionary": "chats", **half},
                "body.account_id": {"dictionary": "accounts", **half},
                "body.teacher_id": {"dictionary": "accounts", **half},
                "body.class_id": {"dictionary": "classes", **half},
                "body.subject_id": {"dictionary": "subjects", **half},
                "body.add[*]": {"dictionary": "accounts", **half},
                "body.remove[*]": {"dictionary": "accounts", **half},
                "body.lesson_id": {"dictionary": "lessons", **half},
                "path.videoconference_id": {"dictionary": "videoconferences", **half},
                "body.blocked[*]": {"dictionary": "accounts", **half},
            },
        }
    )
    return schemathesis.openapi.from_url(
        live.url + "/journal/v1/openapi.json", config=config, timeout=30
    )


# schemathesis.pytest.from_fixture would load the schema lazily too, but it reads
# ``request.node._nodeid``, which pytest 9.2 no longer has; hence a plain parametrized test
# and Hypothesis' own @given around the operation's strategy.
@pytest.mark.parametrize(("method", "path", "mode", "headers"), list(_operations()))
def test_journal_api_conforms_to_its_openapi(
    journal_api: schemathesis.BaseSchema,
    journal: dict[str, Any],
    method: str,
    path: str,
    mode: GenerationMode,
    headers: dict[str, str],
) -> None:
    sign = JournalSignature(journal)

    @given(case=journal_api[path][method].as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES[mode],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        r = case.call_and_validate(headers=headers, checks=CHECKS, auth=sign, timeout=30)
        # 401 is documented, so a signature gone wrong would pass every check above.
        assert r.status_code != 401, f"{case.method} {case.formatted_path}: {r.text}"

    check()
