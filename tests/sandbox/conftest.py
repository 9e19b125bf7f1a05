"""The sandbox's tests: its OMICall API, logged in, on each module's own `sandbox`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from service.sandbox import Sandbox
from tests.sandbox.test_sandbox import Api


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        client = Api(session, sandbox.url)
        await client.login()
        yield client
