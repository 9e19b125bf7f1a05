"""Reading a templates file: YAML to models, compiled once, every problem named in one error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from jinja2 import Template as Jinja
from jinja2 import TemplateSyntaxError
from pydantic import ValidationError

from ..errors import ConfigError
from .compiled import Template, Templates
from .filters import Environment, environment
from .models import Options, TemplatesFile, TemplateSpec


def load(path: Path | str) -> Templates:
    """The compiled templates of a file; ConfigError with one line per problem otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    return parse(text, str(path))


def parse(text: str, source: str = "templates") -> Templates:
    """The compiled templates of a YAML text."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    problems: list[str] = []
    specs: list[TemplateSpec] = []
    try:
        model = TemplatesFile.model_validate(document)
        specs = list(model.templates)
    except ValidationError as exc:
        problems += [_where(document, error) for error in exc.errors()]
        model = None
        specs = _valid_templates(document)  # still check those that parse, for a full report
    defaults = model.defaults if model else _valid_defaults(document)
    env = environment()
    compiled = [_compile(env, spec, defaults, problems) for spec in specs]
    problems += _duplicate_names(specs)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return Templates(compiled, source, dict(env.globals))


def _valid_templates(document: Any) -> list[TemplateSpec]:
    entries = document.get("templates") if isinstance(document, dict) else None
    specs = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            specs.append(TemplateSpec.model_validate(entry))
        except ValidationError:
            continue  # already reported
    return specs


def _valid_defaults(document: Any) -> Options:
    """The defaults' valid keys (the others are already reported), so as not to report more."""
    raw = document.get("defaults") if isinstance(document, dict) else None
    if not isinstance(raw, dict):
        return Options()
    try:
        return Options.model_validate(raw)
    except ValidationError as exc:
        bad = {error["loc"][0] for error in exc.errors() if error["loc"]}
    try:
        return Options.model_validate({k: v for k, v in raw.items() if k not in bad})
    except ValidationError:
        return Options()


def _compile(
    env: Environment, spec: TemplateSpec, defaults: Options, problems: list[str]
) -> Template:
    # A key the template sets, even to null, overrides the default: `call_window: null` unsets it.
    merged = {**defaults.model_dump(exclude_none=True), **spec.model_dump(exclude_unset=True)}
    options = Options.model_validate({k: v for k, v in merged.items() if k in Options.model_fields})
    if spec.extension is not None and options.cid is None:
        problems.append(f"{spec.name}: cid: an extension template needs one (its own or defaults')")
    sources = {
        name: getattr(spec, name)
        for name in ("phone", "extension", "campaign", "idempotency_key", "account")
        if getattr(spec, name) is not None
    }
    sources |= {f"script[{i}].say": step.say for i, step in enumerate(spec.script) if step.say}
    fields: dict[str, Jinja] = {}
    for field, source in sources.items():
        try:
            fields[field] = env.from_string(source)
        except TemplateSyntaxError as exc:
            problems.append(f"{spec.name}: {field}: {exc.message} (line {exc.lineno})")
    when = None
    if spec.when is not None:
        try:
            env.compile_expression(spec.when)  # one expression, or its syntax error
            # Rendered like the other fields, with one shared context (see render._render).
            when = env.from_string("{% if " + spec.when + " %}1{% endif %}")
        except TemplateSyntaxError as exc:
            problems.append(f"{spec.name}: when: {exc.message}")
    pattern = tuple(spec.event.split("."))
    return Template(spec=spec, options=options, pattern=pattern, fields=fields, when=when)


def _duplicate_names(specs: list[TemplateSpec]) -> list[str]:
    seen: set[str] = set()
    problems = []
    for spec in specs:
        if spec.name in seen:
            problems.append(f"{spec.name}: name: used by more than one template")
        seen.add(spec.name)
    return problems


def _where(document: Any, error: Any) -> str:
    """'order_confirmation: script[2].say: …' from a pydantic error location."""
    loc = list(error["loc"])
    where = "file"
    if len(loc) >= 2 and loc[0] == "templates" and isinstance(loc[1], int):
        where = _template_name(document, loc[1])
        loc = loc[2:]
    elif loc:
        where, loc = str(loc[0]), loc[1:]
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    path = path.lstrip(".")
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{where}: {path}: {message}" if path else f"{where}: {message}"


def _template_name(document: Any, index: int) -> str:
    try:
        name = document["templates"][index].get("name")
    except (TypeError, KeyError, IndexError, AttributeError):
        name = None
    return str(name) if isinstance(name, str) and name else f"templates[{index}]"
