"""The call-history search, v3 (`POST /api/v3/call-transaction/search`, the filter wrapped,
pages in snake_case, camelCase or as a bare list) and v2 (`POST /api/v2/callTransaction/search`):
its query and its pages (CONTRACT.md §9, §12)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .script import Attempt, format_number

PAGE_SIZE = 50
HISTORY_APIS = ("v3", "v2", "both")  # the versions the sandbox serves
PAGINGS = ("snake", "camel", "list")


@dataclass(frozen=True)
class Query:
    """A search: each given filter must hold (times in ms, inclusive, on `time_start_call`)."""

    from_ms: int | None = None
    to_ms: int | None = None
    phones: frozenset[str] | None = None  # as digits (84…), so any format matches
    transactions: frozenset[str] | None = None

    def matches(self, attempt: Attempt) -> bool:
        """Whether a finished attempt is one this search asks for."""
        started = attempt.cdr["time_start_call"] * 1000
        if self.from_ms is not None and started < self.from_ms:
            return False
        if self.to_ms is not None and started > self.to_ms:
            return False
        if self.phones is not None and format_number(attempt.number, "digits") not in self.phones:
            return False
        return self.transactions is None or attempt.cdr["transaction_id"] in self.transactions


def parse_query(body: object, version: str = "v2") -> Query | str:
    """The search a body asks for (v3: its `filter`), or the error code that rejects it."""
    if version == "v3" and isinstance(body, dict):
        body = body.get("filter", {})
    if not isinstance(body, dict):
        return "invalid_json"
    times = [body.get(name) for name in ("fromDate", "toDate")]
    if not all(t is None or type(t) is int for t in times):
        return "invalid_date"
    lists = [body.get(name) for name in ("phoneNumbers", "transactionIds")]
    if not all(v is None or _strings(v) for v in lists):
        return "invalid_field"
    phones, transactions = lists
    return Query(
        from_ms=times[0],
        to_ms=times[1],
        phones=None if phones is None else frozenset(format_number(p, "digits") for p in phones),
        transactions=None if transactions is None else frozenset(transactions),
    )


def parse_page(query: dict[str, str]) -> tuple[int, int] | str:
    """`page` (from 1) and `size` (1 to 50) of the query string, or the error code."""
    try:
        page, size = int(query.get("page", "1")), int(query.get("size", str(PAGE_SIZE)))
    except ValueError:
        return "invalid_page"
    if page < 1 or not 1 <= size <= PAGE_SIZE:
        return "invalid_page"
    return page, size


def search(
    attempts: Iterable[Attempt],
    query: Query,
    page: int,
    size: int,
    *,
    paging: str = "snake",
    with_id: bool = True,
) -> Any:
    """One page of the finished attempts that match, oldest first: the answer's payload, paged
    as `paging` says; `with_id` False leaves `autocall_id` out (the items keep `autocall_uuid`)."""
    found = sorted(
        (a for a in attempts if query.matches(a)), key=lambda a: a.cdr["time_start_call"]
    )
    start = (page - 1) * size
    items = [attempt.item() for attempt in found[start : start + size]]
    if not with_id:
        items = [{k: v for k, v in item.items() if k != "autocall_id"} for item in items]
    if paging == "list":
        return items
    pages = max(1, -(-len(found) // size))
    if paging == "camel":
        return {"items": items, "hasNext": page < pages, "pageNumber": page, "totalPages": pages}
    return {"items": items, "has_next": page < pages, "page_number": page, "total_pages": pages}


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)
