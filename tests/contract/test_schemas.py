"""schemas/: the committed files are what `autocall-bridge schemas` writes; real data fits them."""

from __future__ import annotations

import dataclasses
import json
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml

from service.cli.main import main
from service.contract import models, schemas
from service.errors import InvalidPhone, OutcomeUnknown
from service.events import Message, decode, identity_of
from service.pipeline.outcomes import Outcome, Status
from service.render import EXTENSION_PATH, PHONE_PATH, Call, decide
from service.templates import TemplatesFile, load
from service.templates.filters import LOCAL_TZ

ROOT = Path(__file__).parents[2]
SCHEMAS = ROOT / "schemas"
EXAMPLES = ROOT / "examples"
SAMPLES = Path(__file__).parents[1] / "samples"
NOW = datetime(2026, 11, 27, 14, 30, tzinfo=LOCAL_TZ)


def validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def is_valid(name: str, instance: Any) -> bool:
    return validator(name).is_valid(instance)


def assert_valid(name: str, instance: Any) -> None:
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator(name).iter_errors(instance)
    ]
    assert not errors, f"{name}: {errors}"


# (a) staleness


def test_committed_files_are_what_the_models_generate() -> None:
    expected = schemas.documents()
    stale = [
        name
        for name, text in expected.items()
        if not (SCHEMAS / name).is_file() or (SCHEMAS / name).read_text(encoding="utf-8") != text
    ]
    extra = sorted({path.name for path in SCHEMAS.iterdir()} - set(expected))
    assert not stale and not extra, f"schemas/ is stale ({stale or extra}): run `make schemas`"


def test_documents_are_deterministic() -> None:
    assert schemas.documents() == schemas.documents()
    assert all(text.endswith("\n") for text in schemas.documents().values())


def test_write_writes_every_document(tmp_path: Path) -> None:
    paths = schemas.write(tmp_path / "out")
    assert [path.name for path in paths] == list(schemas.documents())
    assert all(path.read_text(encoding="utf-8") == schemas.documents()[path.name] for path in paths)


def test_the_cli_prints_each_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["schemas", str(tmp_path)])
    assert exit_.value.code == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / name) for name in schemas.documents()]


@pytest.mark.parametrize("name", [n for n in schemas.documents() if n.endswith(".json")])
def test_each_schema_is_2020_12(name: str) -> None:
    document = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"] and document["title"] and document["description"]
    validator(name)  # check_schema: a valid schema of its draft


# (b) real data validates


def cloudevents() -> list[Path]:
    candidates = [*sorted((EXAMPLES / "events").glob("*.json")), *sorted(SAMPLES.glob("cloud*"))]
    return [p for p in candidates if "specversion" in json.loads(p.read_bytes())]


@pytest.mark.parametrize("path", cloudevents(), ids=lambda path: path.name)
def test_real_cloudevents_validate(path: Path) -> None:
    assert_valid("event.schema.json", json.loads(path.read_bytes()))


def test_there_are_cloudevent_examples() -> None:
    assert len(cloudevents()) >= 2


def test_the_example_templates_validate() -> None:
    assert_valid("templates.schema.json", yaml.safe_load((EXAMPLES / "templates.yaml").read_text()))


def example_call() -> Call:
    templates = load(EXAMPLES / "templates.yaml")
    body = (EXAMPLES / "events" / "order_created.json").read_bytes()
    decision = decide(templates, decode(Message(body, type="order.created")), NOW)
    assert isinstance(decision, Call)
    return decision


def real_outcomes() -> list[Outcome]:
    call = example_call()
    identity = call.event.identity
    unknown = OutcomeUnknown("no answer within 10 s")
    return [
        Outcome.accepted(call, "6745a1b2c3d4e5f6a7b8c9d0", 1, NOW),
        Outcome.failed(identity, InvalidPhone("not a number: 0909 090 909"), NOW, call=call),
        Outcome.failed(identity, unknown, NOW, call=call, attempts=1),
        Outcome.failed(identity_of(Message(b"{oops", routing_key="x")), unknown, NOW),
        Outcome.skipped(identity, "duplicate", NOW, call=call),
        Outcome.skipped(identity, "no_template", NOW),
    ]


@pytest.mark.parametrize(
    "outcome", real_outcomes(), ids=lambda o: f"{o.status}-{o.reason or o.code}"
)
def test_real_outcomes_validate(outcome: Outcome) -> None:
    assert_valid("outcome.schema.json", orjson.loads(outcome.body()))


def test_the_outcome_model_mirrors_the_dataclass() -> None:
    assert list(models.OutcomeEvent.model_fields) == [f.name for f in dataclasses.fields(Outcome)]
    status = models.OutcomeEvent.model_fields["status"].annotation
    assert typing.get_args(status) == typing.get_args(Status)


def render(capsys: pytest.CaptureFixture[str], event: Path, *args: str) -> dict[str, Any]:
    templates = str(EXAMPLES / "templates.yaml")
    with pytest.raises(SystemExit) as exit_:
        main(["render", templates, str(event), "--now", "2026-11-27T22:00:00+07:00", *args])
    assert exit_.value.code == 0
    decision: dict[str, Any] = json.loads(capsys.readouterr().out)
    return decision


def test_every_decision_render_prints_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = EXAMPLES / "events"
    small = tmp_path / "small.json"
    small.write_text('{"code": "DH-1", "total_price": 5000, "customer": {"phone": "0909090909"}}')
    bad_phone = tmp_path / "bad_phone.json"
    bad_phone.write_text('{"code": "DH-2", "total_price": 500000, "customer": {"phone": "12"}}')
    not_json = tmp_path / "not.json"
    not_json.write_text("{oops")
    decisions = [
        render(capsys, events / "order_created.json", "--type", "order.created"),
        render(capsys, events / "order_flagged.json", "--type", "order.flagged"),
        render(capsys, events / "cloudevent_order_created.json"),
        render(capsys, events / "order_created.json", "--type", "nothing.matches"),
        render(capsys, small, "--type", "order.created"),
        render(capsys, bad_phone, "--type", "order.created"),
        render(capsys, not_json, "--type", "order.created"),
        render(capsys, events / "shipment_delivered.json", "--type", "shipment.delivered"),
    ]
    for decision in decisions:
        assert_valid("decision.schema.json", decision)
    kinds = [(d["decision"], d.get("reason") or d.get("error", {}).get("code")) for d in decisions]
    assert kinds == [
        ("call", None),
        ("call", None),
        ("call", None),
        ("skip", "no_template"),
        ("skip", "condition_false"),
        ("fail", "invalid_phone"),
        ("fail", "invalid_event"),
        ("defer", "call_window"),
    ]
    assert {d["request"]["path"] for d in decisions[:3]} == {PHONE_PATH, EXTENSION_PATH}


# (c) what the schemas reject


def test_an_outcome_with_an_unknown_status_is_rejected() -> None:
    body = orjson.loads(real_outcomes()[0].body())
    assert is_valid("outcome.schema.json", body)
    assert not is_valid("outcome.schema.json", body | {"status": "weird"})
    assert not is_valid("outcome.schema.json", body | {"phone": "0909090909"})  # unmasked
    assert not is_valid("outcome.schema.json", body | {"occurred_at": "2026-11-27T14:30:00"})
    assert not is_valid("outcome.schema.json", {k: v for k, v in body.items() if k != "error"})
    failed = orjson.loads(real_outcomes()[1].body())
    assert not is_valid("outcome.schema.json", failed | {"error": None})


def test_a_decision_of_an_unknown_kind_is_rejected() -> None:
    skip = {
        "decision": "skip",
        "reason": "no_template",
        "event": {"id": "1", "type": "a", "source": None},
    }
    assert is_valid("decision.schema.json", skip)
    assert not is_valid("decision.schema.json", skip | {"decision": "maybe"})
    assert not is_valid("decision.schema.json", skip | {"reason": "duplicate"})


def test_an_event_without_a_type_is_rejected() -> None:
    assert not is_valid("event.schema.json", {"specversion": "1.0", "id": "1", "data": {}})
    assert not is_valid("event.schema.json", {"specversion": "1.0", "type": ""})


def template(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": "t", "event": "order.created", "phone": "{{ data.phone }}"}
    spec |= {"script": [{"say": "Xin chào"}]}
    return {"version": 1, "templates": [{**spec, **changes}]}


@pytest.mark.parametrize(
    ("document", "valid"),
    [
        (template(), True),
        (template(bogus=1), False),
        ({**template(), "bogus": 1}, False),
        ({**template(), "version": 2}, False),
        (template(script=[{"say": "a", "recording": "r"}]), False),
        (template(script=[{"say": None, "recording": "r"}]), True),
        (template(script=[{}]), False),
        (template(script=[]), False),
        (template(extension="101"), False),
        (template(phone=None, extension=101, cid=842899959300), True),
        (template(phone=None), False),
        (template(event="order created"), False),
        (template(call_window="22:00-06:00", expires_after="6h"), True),
        (template(call_window="8-21"), False),
        (template(expires_after="soon"), False),
        (template(voice="robot"), False),
        (template(speed=4), False),
        ({**template(), "defaults": {"phone_format": "e164", "on_exhausted": "hold"}}, True),
    ],
)
def test_the_templates_schema_agrees_with_the_models(document: dict[str, Any], valid: bool) -> None:
    accepted = True
    try:
        TemplatesFile.model_validate(document)
    except ValueError:
        accepted = False
    assert accepted is valid
    assert is_valid("templates.schema.json", document) is valid


# (d) the AsyncAPI document


def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text())
    return document


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


def pointer(document: Any, ref: str) -> Any:
    for part in ref.removeprefix("#/").split("/"):
        document = document[part.replace("~1", "/").replace("~0", "~")]
    return document


def test_asyncapi_is_3_0_and_every_ref_resolves() -> None:
    document = asyncapi()
    assert document["asyncapi"] == "3.0.0"
    found = refs(document)
    files = {ref for ref in found if not ref.startswith("#")}
    assert files == {
        "./event.schema.json",
        "./control.schema.json",
        "./outcome.schema.json",
        "./result.schema.json",
    }
    assert all((SCHEMAS / ref).is_file() for ref in files)
    for ref in found:
        if ref.startswith("#"):
            assert pointer(document, ref) is not None, ref


def test_asyncapi_describes_the_topology() -> None:
    document = asyncapi()
    assert {s["protocol"] for s in document["servers"].values()} == {"amqp", "amqps"}
    channels = document["channels"]
    amqp = {name: channel["bindings"]["amqp"] for name, channel in channels.items()}
    exchange = {"name": "autocall.events", "type": "topic", "durable": True, "autoDelete": False}
    assert amqp["events"]["exchange"] == exchange | {"vhost": "/"}
    assert amqp["queue"]["queue"]["name"] == "autocall.events"
    assert amqp["outcomes"]["exchange"]["name"] == "autocall.outcomes"
    assert amqp["dead_letters"]["queue"]["name"] == "autocall.events.dead"
    statuses = channels["outcomes"]["parameters"]["status"]["enum"]
    assert [f"autocall.{s}" for s in statuses] == [
        "autocall.accepted",
        "autocall.failed",
        "autocall.skipped",
    ]
    assert statuses == list(typing.get_args(Status))
    operations = document["operations"]
    assert {(op["action"], op["channel"]["$ref"]) for op in operations.values()} == {
        ("receive", "#/channels/queue"),
        ("send", "#/channels/outcomes"),
        ("send", "#/channels/results"),
        ("send", "#/channels/dead_letters"),
    }
    messages = document["components"]["messages"]
    dead_headers = set(messages["dead_letter"]["headers"]["properties"])
    assert dead_headers == {
        "x-autocall-reason", "x-autocall-error", "x-autocall-event-id", "x-autocall-exchange",
        "x-autocall-routing-key", "x-autocall-template", "x-autocall-dead-lettered-at",
    }  # fmt: skip
    binary = messages["binary_cloud_event"]["headers"]["properties"]
    assert {"cloudEvents_id", "cloudEvents_type", "cloudEvents_time"} <= set(binary)
    for status in statuses:
        outcome = messages[f"outcome_{status}"]
        assert outcome["bindings"]["amqp"]["messageType"] == f"autocall.{status}"
        assert outcome["correlationId"]["location"] == "$message.payload#/event/id"


def test_result_events_fit_their_schema() -> None:
    from service.results.calls import result_of, unknown_of
    from tests.results.test_store import open_call, record

    call = open_call()
    answered = result_of(call, record(), 1, {"1": "confirmed"}, "webhook")
    no_answer = result_of(call, record(result="no_answer", keys=None), 2, {}, "poll")
    for event in (answered, no_answer, unknown_of(call, 1_764_490_000)):
        assert_valid("result.schema.json", orjson.loads(event.body()))
    assert not is_valid("result.schema.json", orjson.loads(answered.body()) | {"result": "x"})
