"""The HTTP session a provider's client calls over: sized to the concurrency, proxies read once."""

from __future__ import annotations

import urllib.request
from urllib.parse import urlsplit

import aiohttp

from ..settings import Settings


def provider_session(settings: Settings) -> aiohttp.ClientSession:
    """The session the service's provider client calls over, closed by whoever opens it."""
    # One connection per concurrent call; keep-alive shorter than typical provider idle timeouts,
    # since a request sent on a connection the server just closed has an unknown outcome.
    connector = aiohttp.TCPConnector(limit=settings.concurrency, keepalive_timeout=10)
    # The proxy settings are read once: aiohttp's trust_env reads them, and ~/.netrc in a
    # thread, on every request (a third of the service's CPU per event, measured).
    proxy = proxy_of(settings.api_base_url)
    return aiohttp.ClientSession(connector=connector, raise_for_status=False, proxy=proxy)


def proxy_of(base_url: str) -> str | None:
    """HTTPS_PROXY / HTTP_PROXY for the provider, unless NO_PROXY names it."""
    parts = urlsplit(base_url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)
