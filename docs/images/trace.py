"""Draws docs/images/trace.svg: one order's trace, from the shop's publish to the call's result.

Nothing in the picture is made up. The script runs the real parts: a shop backend's publish
(a span of its own, made with the OpenTelemetry SDK as a backend would, its `traceparent` in the
message's headers), the service in-process with tracing on, the sandbox provider playing the
call out and posting its record to the service's webhook listener, and the tests' OTLP/HTTP
receiver (tests/otlp.py) decoding what the exporters send. It then draws the spans of that one
trace as a waterfall, the way Jaeger shows a trace.

  .venv/bin/python docs/images/trace.py     # needs the broker (AUTOCALL_AMQP_URL), as make test
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import Callable
from html import escape
from pathlib import Path

import aio_pika
import orjson
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, set_span_in_context

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from service.amqp.topology import Names  # noqa: E402
from service.app import Service  # noqa: E402
from service.sandbox import serve  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.templates import parse  # noqa: E402
from tests.otlp import Received, Receiver, receiver  # noqa: E402
from tests.results.test_results import free_port  # noqa: E402

OUT = Path(__file__).with_suffix(".svg")
AMQP_URL = os.environ.get("AUTOCALL_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
TOKEN = secrets.token_hex(24)
TEMPLATES = """
version: 1
templates:
  - name: order_confirmation
    event: order.created
    phone: "{{ data.customer.phone }}"
    idempotency_key: "order:{{ data.code }}"
    script: [{say: "Đơn hàng của quý khách đã được tiếp nhận. Bấm 1 để xác nhận."}]
    choices: {"1": confirmed}
"""
ORDER = {"code": "DH1042", "customer": {"phone": "0901234561"}, "total_price": 455000}
SPANS = 7  # the shop's publish; process, claim, call, publish; the result, its publish


async def capture() -> list[Received]:
    """One order through the real parts; the spans of its trace."""
    async with receiver() as otlp, serve() as sandbox:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp.url
        os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "50"
        sandbox.state.call_seconds = 0.25
        prefix = f"trace-doc.{secrets.token_hex(4)}"
        settings = Settings(
            amqp_url=AMQP_URL,
            queue=f"{prefix}.events",
            input_exchange=f"{prefix}.in",
            outcome_exchange=f"{prefix}.out",
            api_base_url=sandbox.url,
            api_key="sandbox-key",
            http_port=0,
            webhook_token=TOKEN,
            webhook_port=free_port(),
            result_poll_interval=0,
        )
        try:
            async with Service(settings, parse(TEMPLATES, "doc")) as service:
                assert service.results is not None
                port = service.results.webhook_port
                sandbox.state.webhook_url = f"http://127.0.0.1:{port}/webhooks/omicall/{TOKEN}"
                trace_id = await publish_and_await(settings, otlp)
        finally:
            await clean_up(settings)
        # The sandbox posts a record more than once, as the provider may: the service's span for
        # a copy says `duplicate` and publishes nothing; the picture leaves it out.
        return [
            span
            for span in otlp.spans
            if span.trace_id == trace_id
            and span.attributes.get("autocall.published") != "duplicate"
        ]


async def publish_and_await(settings: Settings, otlp: Receiver) -> str:
    """The shop publishes the order in a span of its own; then the result comes back."""
    shop = TracerProvider(resource=Resource({"service.name": "shop-backend"}))
    # In batches, from the SDK's thread: an export from this loop's thread would wait on the
    # receiver, which runs on this loop.
    shop.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp.url}/v1/traces")))
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        outcomes = await channel.declare_exchange(
            settings.outcome_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        results = await channel.declare_queue(exclusive=True)
        await results.bind(outcomes, "autocall.result.#")
        events = await channel.declare_exchange(
            settings.input_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        span = shop.get_tracer("shop").start_span("publish order.created", kind=SpanKind.PRODUCER)
        carrier: dict[str, str] = {}
        inject(carrier, context=set_span_in_context(span))
        headers: dict[str, aio_pika.abc.FieldValue] = dict(carrier)
        body = orjson.dumps(ORDER)
        message = aio_pika.Message(
            body, headers=headers, message_id="evt-1042", type="order.created"
        )
        await events.publish(message, routing_key="order.created")
        span.end()
        async with results.iterator() as arriving:
            async for result in arriving:
                await result.ack()
                break
    await asyncio.to_thread(shop.shutdown)
    trace_id = f"{span.get_span_context().trace_id:032x}"
    await otlp.trace(trace_id, SPANS)
    return trace_id


async def clean_up(settings: Settings) -> None:
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        names = Names.of(settings, parse(TEMPLATES, "doc"))
        for queue in [*names.all(), f"{settings.queue}.results"]:
            await channel.queue_delete(queue)
        for exchange in (settings.input_exchange, settings.outcome_exchange):
            await channel.exchange_delete(exchange)


def ordered(spans: list[Received]) -> list[tuple[int, Received]]:
    """(depth, span), each span under its parent, siblings by start time."""
    children: dict[str, list[Received]] = {}
    ids = {span.span_id for span in spans}
    for span in sorted(spans, key=lambda s: s.start_ns):
        parent = span.parent_id if span.parent_id in ids else ""
        children.setdefault(parent, []).append(span)
    rows: list[tuple[int, Received]] = []

    def walk(parent: str, depth: int) -> None:
        for span in children.get(parent, []):
            rows.append((depth, span))
            walk(span.span_id, depth + 1)

    walk("", 0)
    return rows


COLOURS = {"shop-backend": "#8e6bbf", "autocall-bridge": "#3f51b5"}
KIND_NOTE = {"PRODUCER": "producer", "CONSUMER": "consumer", "CLIENT": "client"}
LABEL_W, BAR_W, ROW_H, TOP, BREAK = 330, 560, 30, 58, 24
Clock = Callable[[int], float]  # a moment (ns) to its x


def timeline(spans: list[Received]) -> tuple[Clock, list[tuple[float, str]]]:
    """The x of each moment, and the axis's ticks. The event's work takes milliseconds and its
    result comes long after: the idle stretch between them is cut out (drawn as a break), and
    each side gets its own scale, the event's three quarters of the width."""
    start, end = min(s.start_ns for s in spans), max(s.end_ns for s in spans)
    results = [s for s in spans if s.name.startswith("autocall.result")]
    later = min(results, key=lambda s: s.start_ns)
    first_end = max(s.end_ns for s in spans if s.end_ns <= later.start_ns)
    left, right = BAR_W * 0.72, BAR_W * 0.28 - BREAK

    def x(moment: int) -> float:
        if moment <= first_end:
            return LABEL_W + (moment - start) / (first_end - start) * left
        return LABEL_W + left + BREAK + (moment - later.start_ns) / (end - later.start_ns) * right

    ticks = [(x(start + (first_end - start) * n // 4), f"{(first_end - start) * n / 4e6:.1f} ms")
             for n in range(4)]  # fmt: skip
    ticks.append((x(later.start_ns), f"+{(later.start_ns - start) / 1e9:.2f} s"))
    ticks.append((x(end), f"+{(end - start) / 1e9:.2f} s"))
    return x, ticks


def draw(spans: list[Received]) -> str:
    """The waterfall: a row a span, its bar on the trace's time scale, its duration beside it."""
    rows = ordered(spans)
    x, ticks = timeline(spans)
    width, height = LABEL_W + BAR_W + 90, TOP + ROW_H * len(rows) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" '
        'font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        '<text x="12" y="22" font-size="14" font-weight="bold">Order DH1042: the shop\'s '
        f"publish, the service's work and the call's result, one trace of {len(rows)} spans</text>",
        '<text x="12" y="40" fill="#555">exported by the service and the shop, drawn from what '
        "an OTLP receiver got; the break hides the call itself (here the sandbox's, seconds; "
        "a real one, minutes)</text>",
    ]
    for row, (depth, span) in enumerate(rows):
        parts.extend(_row(row, depth, span, x))
    for tick, label in ticks:
        parts.append(f'<line x1="{tick:.1f}" y1="{TOP - 6}" x2="{tick:.1f}" y2="{height - 30}" '
                     'stroke="#d0d0d0" stroke-dasharray="2,3"/>')  # fmt: skip
        parts.append(f'<text x="{tick:.1f}" y="{height - 14}" fill="#777" '
                     f'text-anchor="middle">{label}</text>')  # fmt: skip
    cut = LABEL_W + BAR_W * 0.72 + BREAK / 2
    parts.append(f'<text x="{cut:.1f}" y="{height - 30}" fill="#777" text-anchor="middle" '
                 'font-size="16">≈</text>')  # fmt: skip
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _row(row: int, depth: int, span: Received, x: Clock) -> list[str]:
    y = TOP + row * ROW_H
    service = str(span.resource.get("service.name", ""))
    colour = "#d32f2f" if span.status == "ERROR" else COLOURS.get(service, "#607d8b")
    left = x(span.start_ns)
    bar = max(2.0, x(span.end_ns) - left)
    note = KIND_NOTE.get(span.kind, "")
    label = f"{span.name}" + (f"  ({note})" if note else "")
    ms = (span.end_ns - span.start_ns) / 1e6
    return [
        f'<rect x="0" y="{y}" width="{LABEL_W + BAR_W + 90}" height="{ROW_H}" '
        f'fill="{"#f6f6fa" if row % 2 else "#ffffff"}"/>',
        f'<text x="{12 + depth * 16}" y="{y + 13}" fill="#222">{escape(label)}</text>',
        f'<text x="{12 + depth * 16}" y="{y + 25}" fill="#888" font-size="10">'
        f"{escape(service)}</text>",
        f'<rect x="{left:.1f}" y="{y + 8}" width="{bar:.1f}" height="14" rx="2" fill="{colour}"/>',
        f'<text x="{left + bar + 4:.1f}" y="{y + 19}" fill="#444" font-size="11">'
        f"{ms:.1f} ms</text>",
    ]


def main() -> None:
    spans = asyncio.run(capture())
    OUT.write_text(draw(spans), encoding="utf-8")
    sys.stdout.write(f"{OUT.relative_to(ROOT)}: {len(spans)} spans\n")


if __name__ == "__main__":
    main()
