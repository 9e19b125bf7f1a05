"""JSON Schemas of the templates file, events, outcomes and decisions, and the AsyncAPI document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

from ..suppression.schema import ControlEvent
from ..templates import TemplatesFile
from . import asyncapi
from .models import (
    CloudEvent,
    Decision,
    OutcomeEvent,
    ResultEvent,
)

DRAFT = "https://json-schema.org/draft/2020-12/schema"


class _Generator(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # "Num Retry" from num_retry says nothing the key does not


def documents() -> dict[str, str]:
    """Every file of schemas/, by name: the exact text `write` puts there."""
    schemas = {
        "templates": (
            TemplatesFile.model_json_schema(schema_generator=_Generator),
            "autocall-bridge templates file",
            "The YAML file of AUTOCALL_TEMPLATES (CONTRACT.md §4); `autocall-bridge check` "
            "validates it further (Jinja2 syntax, unique names, an extension's cid).",
        ),
        "event": (
            CloudEvent.model_json_schema(schema_generator=_Generator),
            "autocall-bridge inbound event",
            CloudEvent.__doc__ or "",
        ),
        "control": (
            ControlEvent.model_json_schema(schema_generator=_Generator),
            "autocall-bridge control event",
            ControlEvent.__doc__ or "",
        ),
        "outcome": (
            OutcomeEvent.model_json_schema(schema_generator=_Generator),
            "autocall-bridge outcome event",
            "The body of each outcome on the outcome exchange (CONTRACT.md §7).",
        ),
        "result": (
            ResultEvent.model_json_schema(schema_generator=_Generator),
            "autocall-bridge result event",
            "The body of each call result on the outcome exchange (CONTRACT.md §9).",
        ),
        "decision": (
            TypeAdapter(Decision).json_schema(schema_generator=_Generator),
            "autocall-bridge render decision",
            "What `autocall-bridge render` prints (CONTRACT.md §6): one of four shapes.",
        ),
    }
    texts = {
        f"{name}.schema.json": _pretty_json(_headed(f"{name}.schema.json", *parts))
        for name, parts in schemas.items()
    }
    return texts | {"asyncapi.yaml": _yaml(asyncapi.document())}


def write(directory: Path) -> list[Path]:
    """Writes `documents()` into `directory`; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in documents().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def _headed(name: str, schema: dict[str, Any], title: str, description: str) -> dict[str, Any]:
    head = {"$schema": DRAFT, "$id": f"urn:autocall-bridge:schemas:{name}", "title": title}
    body = {key: value for key, value in schema.items() if key not in ("title", "description")}
    return head | {"description": " ".join(description.split())} | body


def _pretty_json(document: dict[str, Any]) -> str:
    """Indented, non-ASCII kept, newline-terminated: a file people read and diff."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # a shared dict is written out again: anchors would puzzle readers


def _yaml(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
