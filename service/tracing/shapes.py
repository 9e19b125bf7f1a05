"""What the spans read of the objects the layers above hand them, by shape: the pipeline's
outcomes, aio-pika's outgoing messages, the result side's calls and result events. This package
sits below all of them (import-linter's layers), so it names none of their classes."""

from __future__ import annotations

from typing import Any, Protocol

from aio_pika.abc import FieldValue


class Outgoing(Protocol):
    """A message about to be published (its AMQP properties): its headers take the trace
    context."""

    headers: dict[str, FieldValue] | None
    message_id: str | None


class Outcome(Protocol):
    """What the process span reads of an outcome (pipeline.outcomes.Outcome)."""

    @property
    def status(self) -> str: ...
    @property
    def template(self) -> str | None: ...
    @property
    def autocall_id(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def event(self) -> dict[str, Any]: ...
    @property
    def code(self) -> str | None: ...
    @property
    def account(self) -> str | None: ...
    @property
    def provider(self) -> str | None: ...


class KeptCall(Protocol):
    """What a result span reads of the call it belongs to (results.calls.OpenCall)."""

    @property
    def traceparent(self) -> str: ...
    @property
    def template(self) -> str: ...
    @property
    def event(self) -> dict[str, Any]: ...


class ResultEvent(Protocol):
    """What a result span reads of a result event (results.calls.ResultEvent)."""

    @property
    def call(self) -> KeptCall: ...
    @property
    def result(self) -> str: ...
    @property
    def final(self) -> bool: ...
    @property
    def attempt(self) -> int: ...
    @property
    def choice(self) -> str | None: ...
    @property
    def source(self) -> str: ...
