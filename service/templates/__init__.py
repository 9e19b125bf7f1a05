"""The templates file: YAML read into pydantic models, compiled once, matched to events.

models.py    the file as pydantic models: Options, Step, TemplateSpec, TemplatesFile, CallWindow
loading.py   load(path) and parse(text): compile every template, name every problem
filters.py   the Vietnamese filters (vnd, words, spell, phone, date) and the sandboxed environment
compiled.py  Template and Templates as the service uses them; topic_matches
direct.py    a compiled field rendered without Template.render's copies (a speed-up)
"""

from __future__ import annotations

from .compiled import Template, Templates, topic_matches
from .loading import load, parse
from .models import CallWindow, Options, Step, TemplatesFile, TemplateSpec, Voice

__all__ = [
    "CallWindow",
    "Options",
    "Step",
    "Template",
    "TemplateSpec",
    "Templates",
    "TemplatesFile",
    "Voice",
    "load",
    "parse",
    "topic_matches",
]
