"""The row machinery both authorization matrices share (tests/test_authorization_matrix.py for the pages,
tests/api/test_api_matrix.py for the API): one row per route, object side and method with the status expected for
each role of tests/world.py, the walk over the URL patterns that finds routes without rows, and the checks of
one cell (one person's request) run inside a savepoint, so that each cell sees the same world.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.urls import URLPattern, URLResolver

from tests.world import Q_DEFINITION, ROLES

Expect = int | str | frozenset[int]
L = "login"  # anonymous → 302 to /accounts/login/
LOGIN = "/accounts/login/"


@dataclass(frozen=True)
class Row:
    name: str
    obj: str | None  # "definition", "run", "project", "membership", "account", "dataset_request"… or None
    side: str  # "P" (own), "Q" (other) or "-" (no object)
    method: str
    expect: dict[str, Expect]
    body: dict[str, Any] = field(default_factory=dict)
    extra_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.method} {self.name} {self.side}"


def row(name: str, obj: str | None, side: str, method: str, *expected: Expect, **options: Any) -> Row:
    assert len(expected) == len(ROLES), name
    return Row(name=name, obj=obj, side=side, method=method, expect=dict(zip(ROLES, expected, strict=True)), **options)


def url_patterns(
    patterns: list[Any],
    *,
    skip: Callable[[str, Any], object] = lambda route, pattern: None,
    prefix: str = "",
    namespace: str = "",
) -> Iterator[tuple[str, str, URLPattern]]:
    """(namespace, route, pattern) of every leaf URL pattern, not entering what ``skip(route, pattern)`` refuses."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if skip(route, pattern):
            continue
        if isinstance(pattern, URLResolver):
            ns = pattern.namespace
            yield from url_patterns(
                pattern.url_patterns, skip=skip, prefix=route, namespace=f"{namespace}{ns}:" if ns else namespace
            )
        elif isinstance(pattern, URLPattern):
            yield namespace, route, pattern


def unclassified(matrix: Iterable[Row], routes: set[str]) -> tuple[list[str], list[str]]:
    """The routes with no row in ``matrix``, and the rows whose route no longer exists."""
    classified = {r.name for r in matrix}
    return sorted(routes - classified), sorted(classified - routes)


def assert_every_object_route_has_an_own_and_an_other_row(matrix: list[Row]) -> None:
    for name in {r.name for r in matrix if r.obj}:
        sides = {r.side for r in matrix if r.name == name}
        assert {"P", "Q"} <= sides, f"{name} needs a row for an object of P and one of Q"


def body_of(response: Any) -> bytes:
    """What was sent, streamed or not (a download streams its file: read it, so the leak check sees it)."""
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def cell_problems(
    r: Row, role: str, response: Any, *, shown: str, more: Iterable[str] = (), body: bytes | None = None
) -> list[str]:
    """What is wrong with ``role``'s answer to row ``r``: a server error, another status than expected (``shown``
    follows the status in the message), ``more`` (the matrix's own checks), the other project's definition name in
    the body of anybody but the admin (``body``: what was sent, when the caller has read it already)."""
    expected = r.expect[role]
    problems = []
    status = response.status_code
    if status >= 500:
        problems.append(f"{status} (server error)")
    if expected == L:
        location = response.get("Location", "")
        if status != 302 or not location.startswith(LOGIN):
            problems.append(f"expected 302 to {LOGIN}, got {status} {location!r}")
    else:
        allowed = expected if isinstance(expected, frozenset) else frozenset({expected})
        if status not in allowed:
            problems.append(f"expected {sorted(allowed)}, got {status}{shown}")
    problems += more
    if role != "admin" and Q_DEFINITION.encode() in (body_of(response) if body is None else body):
        problems.append(f"body contains the other project's definition name {Q_DEFINITION!r}")
    return problems


def send(client: Any, r: Row, url: str, **options: Any) -> Any:
    """Row ``r``'s request: a GET, or its method with its body (``options``: how the client encodes it)."""
    if r.method == "GET":
        return client.get(url)
    return getattr(client, r.method.lower())(url, r.body, **options)


def row_failures(
    r: Row,
    *,
    client: Callable[[str], Any],
    url: Callable[[str], str],
    problems: Callable[[str, Any], list[str]],
    **options: Any,
) -> list[str]:
    """Every role's request of row ``r`` (``client(role)``, to ``url(role)``) and what ``problems`` finds wrong with
    each answer, as ``METHOD url as role: problem`` lines."""
    failures: list[str] = []
    for role in ROLES:
        role_client = client(role)
        address = url(role)
        # A savepoint per cell: what one person's request changes, the next person does not see.
        with transaction.atomic():
            response = send(role_client, r, address, **options)
            failures += [f"{r.method} {address} as {role}: {p}" for p in problems(role, response)]
            transaction.set_rollback(True)
    return failures
