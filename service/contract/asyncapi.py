"""The AsyncAPI 3.0 document of the exchanges, queues and messages (schemas/asyncapi.yaml).

From the service's side: it receives events from its queue and sends outcomes and dead letters.
Payloads refer to the JSON Schema files beside it, so they are written once."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from ..amqp.topology import dead_queue_name
from ..errors import (
    DO_NOT_CALL_CODE,
    PROVIDER_CODES,
    SERVICE_CODES,
    THROTTLED_CODE,
    TOKEN_EXPIRED_CODE,
)
from ..events import STATUSES
from ..provider.records import RESULTS
from ..settings import Settings

# the defaults of AUTOCALL_INPUT_EXCHANGE, AUTOCALL_QUEUE and AUTOCALL_OUTCOME_EXCHANGE
INPUT_EXCHANGE: str = Settings.model_fields["input_exchange"].default
QUEUE: str = Settings.model_fields["queue"].default
OUTCOME_EXCHANGE: str = Settings.model_fields["outcome_exchange"].default
_CE_ATTRIBUTES = ("id", "type", "source", "time", "specversion", "datacontenttype")
_AMQP = {"bindingVersion": "0.3.0"}


def document() -> dict[str, Any]:
    """The document, as plain data."""
    inputs = ("cloud_event", "binary_cloud_event", "plain_event", "suppression_change")
    outcomes = tuple(f"outcome_{status}" for status in STATUSES)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "autocall-bridge",
            "version": metadata.version("autocall-bridge"),
            "description": "E-commerce events in from RabbitMQ, OMICall automated voice calls "
            "out, and one outcome event for each consumed event. Exchange and queue names are "
            "the defaults of AUTOCALL_INPUT_EXCHANGE, AUTOCALL_QUEUE, AUTOCALL_OUTCOME_EXCHANGE.",
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "amqp": _server("amqp", 5672, "AUTOCALL_AMQP_URL=amqp://user:password@host:5672/"),
            "amqps": _server("amqps", 5671, "With TLS: AUTOCALL_AMQP_URL=amqps://…"),
        },
        "channels": _channels(inputs, outcomes),
        "operations": {
            "receive_events": _operation(
                "receive", "queue", "Consume events; ack once the outcome is confirmed.", ack=True
            ),
            "send_outcomes": _operation("send", "outcomes", "Publish outcomes.", deliveryMode=2),
            "send_results": _operation("send", "results", "Publish results.", deliveryMode=2),
            "send_dead_letters": _operation(
                "send", "dead_letters", "Keep failed events.", deliveryMode=2, mandatory=True
            ),
        },
        "components": {
            "messages": _input_messages() | _outcome_messages() | _result() | _dead_letter()
        },
    }


def _channels(inputs: tuple[str, ...], outcomes: tuple[str, ...]) -> dict[str, Any]:
    dead = dead_queue_name(QUEUE)
    return {
        "events": {
            "address": "{eventType}",
            "title": f"Input exchange {INPUT_EXCHANGE}",
            "description": "Producers publish each event with its type as the routing key; "
            "the queue is bound with each template's `event` pattern.",
            "parameters": {"eventType": {"description": "The event type: order.created, …"}},
            "messages": _messages(inputs),
            "bindings": _exchange(INPUT_EXCHANGE),
        },
        "queue": {
            "address": QUEUE,
            "title": f"Queue {QUEUE}",
            "description": f"The service's quorum queue. Retries wait on {QUEUE}.retry.<n> "
            f"and call windows on {QUEUE}.defer.<HHMM>, then come back to it.",
            "messages": _messages(inputs),
            "bindings": _queue(QUEUE),
        },
        "outcomes": {
            "address": "autocall.{status}",
            "title": f"Outcome exchange {OUTCOME_EXCHANGE}",
            "description": "One outcome per consumed event, confirmed by the broker before "
            "the event is acknowledged.",
            "parameters": {
                "status": {"enum": list(STATUSES), "location": "$message.payload#/status"}
            },
            "messages": _messages(outcomes),
            "bindings": _exchange(OUTCOME_EXCHANGE),
        },
        "results": {
            "address": "autocall.result.{result}.{choice}",
            "title": f"Call results on {OUTCOME_EXCHANGE}",
            "description": "One result per attempt (transaction) of an accepted call (§9, §12).",
            "parameters": {
                "result": {"enum": list(RESULTS), "location": "$message.payload#/result"},
                "choice": {"description": "The template's name for the keys, other, or none."},
            },
            "messages": _messages(("result",)),
            "bindings": _exchange(OUTCOME_EXCHANGE),
        },
        "dead_letters": {
            "address": dead,
            "title": f"Dead-letter queue {dead}",
            "description": "The original message of each failed event, with why it failed.",
            "messages": _messages(("dead_letter",)),
            "bindings": _queue(dead),
        },
    }


def _server(protocol: str, port: int, description: str) -> dict[str, Any]:
    return {
        "host": f"localhost:{port}",
        "protocol": protocol,
        "protocolVersion": "0-9-1",
        "description": description,
    }


def _messages(names: tuple[str, ...]) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/messages/{name}"} for name in names}


def _exchange(name: str) -> dict[str, Any]:
    exchange = {"name": name, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"}
    return {"amqp": {"is": "routingKey", "exchange": exchange} | _AMQP}


def _queue(name: str) -> dict[str, Any]:
    queue = {"name": name, "durable": True, "exclusive": False, "autoDelete": False, "vhost": "/"}
    return {"amqp": {"is": "queue", "queue": queue} | _AMQP}


def _operation(action: str, channel: str, summary: str, **amqp: Any) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "bindings": {"amqp": amqp | _AMQP},
    }


def _headers(description: str, **properties: Any) -> dict[str, Any]:
    return {"type": "object", "description": description} | properties


def _input_messages() -> dict[str, Any]:
    others = "Application headers: templates see them as `event.headers`."
    binary = _headers(
        "CloudEvents attributes as `cloudEvents_<attr>` (or `cloudEvents:<attr>`, any letter "
        f"case); the type is required. {others}",
        properties={f"cloudEvents_{name}": {"type": "string"} for name in _CE_ATTRIBUTES},
        anyOf=[{"required": ["cloudEvents_type"]}, {"required": ["cloudEvents:type"]}],
    )
    data = {"description": "Any JSON: the event's `data`."}
    return {
        "cloud_event": {
            "name": "CloudEvent",
            "title": "CloudEvent, structured mode",
            "summary": "Content type application/cloudevents+json, or a body with `specversion`.",
            "contentType": "application/cloudevents+json",
            "headers": _headers(others),
            "payload": {"$ref": "./event.schema.json"},
        },
        "binary_cloud_event": {
            "name": "BinaryCloudEvent",
            "title": "CloudEvent, binary mode",
            "summary": "The same attributes in headers; the body is the data.",
            "headers": binary,
            "payload": data,
        },
        "suppression_change": {
            "name": "SuppressionChange",
            "title": "Control event: the suppression list",
            "summary": "autocall.suppression.add or .remove, routing key = its type (the queue "
            "is bound to autocall.suppression.*); answered with an outcome like any event.",
            "contentType": "application/cloudevents+json",
            "payload": {"$ref": "./control.schema.json"},
        },
        "plain_event": {
            "name": "PlainEvent",
            "title": "Plain JSON event",
            "summary": "Type: the AMQP `type` property, else the routing key. Id: `message_id`, "
            "else a hash of the routing key and body. Time: `timestamp`.",
            "headers": _headers(others),
            "payload": data,
        },
    }


def _outcome_messages() -> dict[str, Any]:
    return {
        f"outcome_{status}": {
            "name": f"autocall.{status}",
            "title": f"Outcome: {status}",
            "summary": f"AMQP properties: type autocall.{status}, content_type application/json, "
            "correlation_id the event id, delivery_mode 2 (persistent).",
            "contentType": "application/json",
            "correlationId": {
                "description": "The AMQP `correlation_id`: the event's id.",
                "location": "$message.payload#/event/id",
            },
            "payload": {
                "allOf": [
                    {"$ref": "./outcome.schema.json"},
                    {"properties": {"status": {"const": status}}},
                ]
            },
            "bindings": {"amqp": {"messageType": f"autocall.{status}"} | _AMQP},
        }
        for status in STATUSES
    }


def _result() -> dict[str, Any]:
    message = {
        "name": "autocall.result",
        "title": "Call result",
        "summary": "AMQP properties: type autocall.result, content_type application/json, "
        "correlation_id the event id, delivery_mode 2 (persistent).",
        "contentType": "application/json",
        "correlationId": {
            "description": "The AMQP `correlation_id`: the id of the event that caused the call.",
            "location": "$message.payload#/event/id",
        },
        "payload": {"$ref": "./result.schema.json"},
        "bindings": {"amqp": {"messageType": "autocall.result"} | _AMQP},
    }
    return {"result": message}


def _dead_letter() -> dict[str, Any]:
    why = {
        "x-autocall-reason": "The outcome's error code.",
        "x-autocall-error": "The outcome's error message.",
        "x-autocall-event-id": "The event's id.",
        "x-autocall-template": "The template that matched it (empty when none did).",
        "x-autocall-dead-lettered-at": "When it was dead-lettered (ISO-8601, local time).",
        "x-autocall-exchange": "The exchange of its last delivery (empty after a retry or wait).",
        "x-autocall-routing-key": "The routing key it was first published with.",
    }
    headers = _headers(
        "The original headers, plus why it failed. The broker's own dead letters (past the "
        "delivery limit) carry `x-death` instead.",
        properties={name: {"type": "string", "description": text} for name, text in why.items()},
    )
    # The service's own codes and the documented provider codes that fail an event (a throttle
    # is retried, a lapsed token renewed, do_not_call skipped); other provider codes may come.
    never = {DO_NOT_CALL_CODE, THROTTLED_CODE, TOKEN_EXPIRED_CODE, *SERVICE_CODES}
    codes = [*SERVICE_CODES, *sorted(PROVIDER_CODES - never)]
    headers["properties"]["x-autocall-reason"]["examples"] = codes
    message = {
        "name": "DeadLetter",
        "title": "Failed event",
        "summary": "The original message: body, properties and headers, kept for inspection.",
        "headers": headers,
        "payload": {"description": "The original body, unchanged."},
    }
    return {"dead_letter": message}
