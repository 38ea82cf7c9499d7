"""Every API action that writes to one object answers to a rule: the base viewset resolves its need (its own, or
its HTTP method's) and asks the need's rule when the action reaches its object. A write action whose need has no
rule is listed here with who decides instead, so a new one cannot slip in unchecked (as the matrices fail on an
unclassified route)."""

from __future__ import annotations

from accounts.api.viewsets import METHOD_NEEDS, RestrictedViewSetMixin
from portal.api_urls import router

WRITES = {"post", "put", "patch", "delete"}

#: Write actions on one object whose need has no rule in the viewset, and who decides instead.
DECIDED_ELSEWHERE = {
    "token destroy": "the restricted queryset: one's own tokens, which one may always revoke",
    "membership approve": "accounts.services with accounts.approvals (403 with its reason)",
    "membership reject": "accounts.services with accounts.approvals (403 with its reason)",
    "membership revoke": "accounts.services with accounts.approvals (403 with its reason)",
    "pending-account approve": "accounts.services with accounts.approvals; the queue is the reviewers' (404)",
    "pending-account reject": "accounts.services with accounts.approvals; the queue is the reviewers' (404)",
    "cohort-definition share": "reached only with the share permission (404 without it, as on the page)",
}


def _object_writes() -> list[tuple[str, type, str, str]]:
    """(basename, viewset, HTTP method, action) of every write route on one object."""
    writes = []
    for _prefix, viewset, basename in router.registry:
        for route in router.get_routes(viewset):
            if not route.detail:
                continue
            for method, action in router.get_method_map(viewset, route.mapping).items():
                if method in WRITES:
                    writes.append((basename, viewset, method, action))
    return writes


def test_every_write_on_one_object_has_a_rule_or_says_who_decides() -> None:
    unruled = set()
    for basename, viewset, method, action in _object_writes():
        assert issubclass(viewset, RestrictedViewSetMixin), f"{basename} writes but is not a restricted viewset"
        need = viewset.action_needs.get(action) or METHOD_NEEDS[method.upper()]
        if need not in viewset.object_rules:
            unruled.add(f"{basename} {action}")
    assert unruled == set(DECIDED_ELSEWHERE), (
        f"write actions without a rule that nobody accounts for: {sorted(unruled - set(DECIDED_ELSEWHERE))}; "
        f"listed but ruled or gone: {sorted(set(DECIDED_ELSEWHERE) - unruled)}"
    )
