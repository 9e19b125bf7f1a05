"""The webhook listener: authenticates first, limits sizes, 4xx for bad input, 200 once durable."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from service.results.kept import Keeper
from service.results.listener import Listener, networks, serve
from tests.results.test_flow import Rig
from tests.results.test_store import T0, open_call

TOKEN = "t0ken-" + "x" * 40
CDR = {
    "state": "cdr",
    "transaction_id": "tx-1",
    "destination_number": "0912345678",
    "time_start_call": T0 + 10,
    "answer_sec": 4,
    "ivr": "1",
    "send_num_retry": 0,
}


class Posting:
    def __init__(self, rig: Rig, url: str, session: aiohttp.ClientSession) -> None:
        self.rig, self.url, self.session = rig, url, session

    async def send(
        self, path: str = f"/webhooks/omicall/{TOKEN}", body: bytes | None = None, **kw: object
    ) -> int:
        data = orjson.dumps(CDR) if body is None else body
        method = str(kw.pop("method", "POST"))
        async with self.session.request(method, self.url + path, data=data, **kw) as answer:  # type: ignore[arg-type]
            return answer.status

    def outcome(self, outcome: str) -> float:
        return self.rig.registry_value("autocall_webhooks_total", {"outcome": outcome})


async def posting(allow: str = "", keep: int = 0) -> AsyncIterator[Posting]:
    rig = Rig()
    await rig.store.record(open_call(num_retry=0))
    keeper = Keeper(rig.store, keep) if keep else None
    listener = Listener(TOKEN, rig.results, rig.metrics, networks(allow), keeper=keeper)
    async with serve(listener, 0, "127.0.0.1") as port, aiohttp.ClientSession() as session:
        yield Posting(rig, f"http://127.0.0.1:{port}", session)


@pytest.fixture
async def post() -> AsyncIterator[Posting]:
    async for value in posting():
        yield value


async def test_a_cdr_is_published_before_the_200(post: Posting) -> None:
    assert await post.send() == 200
    assert [key for key, _, _ in post.rig.publisher.published] == [
        "autocall.result.answered.confirmed"
    ]
    assert await post.send() == 200  # sent again: nothing new
    assert len(post.rig.publisher.published) == 1
    assert (post.outcome("accepted"), post.outcome("duplicate")) == (1, 1)


async def test_the_token_may_come_in_a_header(post: Posting) -> None:
    assert await post.send("/webhooks/omicall", headers={"X-Autocall-Token": TOKEN}) == 200
    assert post.outcome("accepted") == 1


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/webhooks/omicall/wrong", {}),
        (f"/webhooks/omicall/{TOKEN}x", {}),
        ("/webhooks/omicall", {}),
        ("/webhooks/omicall", {"X-Autocall-Token": "nope"}),
        (f"/metrics/{TOKEN}", {}),
        ("/", {}),
    ],
)
async def test_no_token_no_entry(post: Posting, path: str, headers: dict[str, str]) -> None:
    assert await post.send(path, headers=headers) == 404
    assert post.outcome("unauthorized") == 1
    assert post.rig.publisher.published == []


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"x"', b"", b"\xff\xfe"])
async def test_not_a_json_object_is_400(post: Posting, body: bytes) -> None:
    assert await post.send(body=body) == 400
    assert post.outcome("invalid") == 1


async def test_too_large_is_413_also_when_chunked(post: Posting) -> None:
    big = b'{"x": "' + b"a" * (300 * 1024) + b'"}'
    assert await post.send(body=big) == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"a" * 65536  # 6.4 MB, were it all read

    assert await post.send(body=chunks()) == 413  # type: ignore[arg-type]
    assert post.outcome("too_large") == 2


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_only_post(post: Posting, method: str) -> None:
    assert await post.send(method=method) == 405


async def test_live_events_are_counted_never_published(post: Posting) -> None:
    for state in ("ringing", "answered", "hangup"):
        assert await post.send(body=orjson.dumps({"state": state, "call_uuid": "u"})) == 200
    assert post.outcome("live") == 3
    assert post.rig.publisher.published == []


async def test_unmatched_is_200(post: Posting) -> None:
    body = orjson.dumps(CDR | {"destination_number": "0987654321", "transaction_id": "tx-x"})
    assert await post.send(body=body) == 200
    assert post.outcome("unmatched") == 1


async def test_broker_down_is_503_and_the_resend_publishes(post: Posting) -> None:
    post.rig.publisher.down = True
    assert await post.send() == 503
    post.rig.publisher.down = False
    assert await post.send() == 200
    assert len(post.rig.publisher.published) == 1
    assert post.outcome("unavailable") == 1


async def test_allow_list() -> None:
    async for post in posting("10.0.0.0/8"):
        assert await post.send() == 403
    async for post in posting("10.0.0.0/8, 127.0.0.1"):
        assert await post.send() == 200


def test_networks() -> None:
    assert networks(" 10.0.0.0/8 , ::1") == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1"),
    ]
    with pytest.raises(ValueError, match="not a CIDR"):
        networks("10.0.0.0/33")


async def test_the_token_is_in_no_log_line(post: Posting, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    post.rig.publisher.down = True
    await post.send()
    await post.send(f"/webhooks/omicall/{TOKEN[:-1]}")
    await post.send(body=b"x")
    assert caplog.records  # the 503 is logged
    assert not [r for r in caplog.records if TOKEN[:20] in r.getMessage()]


async def test_the_last_bodies_with_a_valid_token_are_kept() -> None:
    async for post in posting(keep=3):
        await post.send("/webhooks/omicall/wrong", body=b'{"state": "cdr"}')  # not kept
        assert await post.send() == 200
        assert await post.send(body=b"not json") == 400
        assert await post.send(body=b'{"state": "early", "phone_number": "0912345678"}') == 200
        assert await post.send(body=b'{"type": "contact"}') == 200
        kept = [orjson.loads(entry) for entry in await post.rig.store.recent(10)]
        assert [(e["kind"], e["outcome"]) for e in kept] == [
            ("contact", "ignored"),
            ("live", "live"),
            ("invalid", "invalid"),
        ]
        assert kept[1]["body"] == {"state": "early", "phone_number": "091****678"}


async def test_a_store_that_cannot_keep_costs_the_copy_not_the_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async for post in posting(keep=5):

        async def refuse(entry: bytes, limit: int) -> None:
            raise ConnectionError("store down")

        post.rig.store.keep = refuse  # type: ignore[method-assign]
        assert await post.send() == 200
        assert post.outcome("accepted") == 1
        assert "cannot keep a webhook body: ConnectionError" in caplog.text
