"""Templates compiled for rendering, and matching an event's type to their topic patterns."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import Template as Jinja

from .filters import environment
from .models import CallWindow, Options, TemplateSpec


@dataclass(frozen=True, slots=True)
class Template:
    """A template compiled for rendering: its options merged with the defaults."""

    spec: TemplateSpec
    options: Options
    pattern: tuple[str, ...]
    fields: dict[str, Jinja]  # phone | extension | campaign | idempotency_key | script[i].say
    when: Jinja | None  # renders "1" when the condition holds

    @property
    def name(self) -> str:
        return self.spec.name

    def matches(self, event_type: str) -> bool:
        """Whether the AMQP topic pattern `event` matches the event's type."""
        return topic_matches(self.pattern, tuple(event_type.split(".")))


class Templates:
    """The compiled templates, in file order."""

    def __init__(
        self, templates: list[Template], source: str = "", env_globals: dict[str, Any] | None = None
    ) -> None:
        self._templates = templates
        self.source = source
        # Jinja's globals (range, dict, …), flattened once: a Template's own are a ChainMap that
        # every render would otherwise copy.
        self.globals = env_globals if env_globals is not None else dict(environment().globals)

    def __iter__(self) -> Iterator[Template]:
        return iter(self._templates)

    def __len__(self) -> int:
        return len(self._templates)

    def names(self) -> list[str]:
        return [template.name for template in self._templates]

    def patterns(self) -> list[str]:
        """The distinct `event` patterns: the queue's bindings."""
        return list(dict.fromkeys(template.spec.event for template in self._templates))

    def windows(self) -> list[CallWindow]:
        """The distinct call windows: each gets a delay queue."""
        windows = (t.options.call_window for t in self._templates if t.options.call_window)
        return list(dict.fromkeys(windows))

    def longest_phone_window(self) -> float:
        """The longest `phone_limit` window, in seconds (0 when no template sets a limit): a
        number's calls are remembered this long."""
        limits = [t.options.phone_limit for t in self._templates if t.options.phone_limit]
        return max((limit.window for limit in limits), default=0.0)

    def __repr__(self) -> str:
        return f"Templates({self.names()!r}, source={self.source!r})"


def topic_matches(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    """AMQP topic matching: `*` is one word, `#` zero or more. Linear in both lengths."""
    # reachable[j]: the pattern so far can match the first j words
    reachable = [True] + [False] * len(words)
    for word in pattern:
        if word == "#":
            for j in range(1, len(words) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            for j in range(len(words), 0, -1):
                reachable[j] = reachable[j - 1] and word in ("*", words[j - 1])
            reachable[0] = False
    return reachable[-1]
