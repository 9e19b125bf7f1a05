"""Failover under a crash: kill -9 while events are being sent on from an account with no money
to its failover account. Across both accounts, one key is called at most once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tests.faults.harness import Rig, order, phone

pytestmark = pytest.mark.faults
EVENTS = 300


def accounts_file(directory: Path, first: str, second: str) -> Path:
    path = directory / "accounts.yaml"
    accounts = {
        "default": {"provider": "omicall", "base_url": first, "api_key": "sandbox-key"},
        "backup": {"provider": "omicall", "base_url": second, "api_key": "sandbox-key"},
    }
    path.write_text(yaml.safe_dump({"accounts": accounts, "failover": {"default": ["backup"]}}))
    return path


async def test_kill_9_in_the_middle_of_a_failover(rig: Rig) -> None:
    """kill -9 while events fail over from an empty account to its backup, then restart."""
    backup = await rig.another_sandbox()
    await rig.sandbox.configure(balance=0)  # every call fails over to the backup
    await backup.configure(latency=0.1)
    path = accounts_file(rig.directory, rig.sandbox.url, backup.url)
    await rig.declare()
    await rig.publish(order(f"f-{i}", f"F{i}", phone(i)) for i in range(EVENTS))
    settings = {"accounts_file": path, "prefetch": 200, "concurrency": 100}
    service = await rig.start_service(**settings)
    await rig.outcomes.wait_events(80, timeout=60)

    await service.process.kill()
    killed = time.monotonic()
    claims = await rig.claims()
    await rig.start_service(**settings)
    ledger = await rig.settle(timeout=90)

    unknown = ledger.statuses["failed/outcome_unknown"]
    ledger.notes.append(
        f"{claims['pending']} claims pending at the kill, {unknown} outcome_unknown, "
        f"{len(await backup.calls())} calls on the backup; all outcomes "
        f"{time.monotonic() - killed:.0f} s after the kill"
    )
    assert ledger.problems() == []  # nobody called twice, across both accounts
    assert ledger.statuses["accepted"] + unknown == EVENTS
    assert unknown == claims["pending"]
    assert await rig.sandbox.calls() == []  # the empty account placed no call
    # an outcome_unknown names the account whose call may be out: its result is looked for there
    unknowns = [o.body for o in rig.outcomes.received if o.body["status"] == "failed"]
    assert all(body["account"] in {"default", "backup"} for body in unknowns), unknowns
    accepted = [o.body for o in rig.outcomes.received if o.body["status"] == "accepted"]
    assert {body["account"] for body in accepted} == {"backup"}
    assert all(
        body["failover"] == [{"account": "default", "code": "balance_is_not_enough"}]
        for body in accepted
    )
