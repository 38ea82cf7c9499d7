"""The portal side of the attack suite: the sites' results stored on runs as their workers store them, and read
back exactly as a researcher sees them (``cohorts.runs.selectors.run_request_result``: each site's rule, the
federated total, per-rule counts, attrition, breakdowns).

The attacker reads only what ``Portal.release`` returns; the tests read the truth from ``Generated`` beside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

import cohorts.concept_sets.selectors
import cohorts.runs.selectors
from accounts.choices import Role
from cohorts.definitions.models import CohortDefinition, CohortDefinitionVersion
from cohorts.expression import parse_expression
from cohorts.expression.hashing import expression_hash
from cohorts.runs.models import RunRequest
from cohorts.runs.selectors import run_request_result
from cohorts.tests.runs import finished_run
from disclosure.ptable import Ptable
from disclosure.rules import PrivacyRule
from disclosure.selectors import rule_for
from disclosure.tests.attacks.site import Generated

#: The id of the exact-count grant the exact rule stands for.
EXACT_GRANT = 1


@dataclass
class Portal:
    """The portal of one test: the sites' sources, a researcher and the project that lets them count there."""

    sources: dict[str, Any]
    researcher: Any
    project: Any
    _versions: dict[str, Any] = field(default_factory=dict)
    _requests: dict[tuple[str, tuple[str, ...]], RunRequest] = field(default_factory=dict)

    def version(self, generated: Generated) -> Any:
        """The researcher's definition of ``generated`` (one per definition name and test): its rows as
        ``definition_create`` writes them, without the object permissions it grants (90 ms each, for hundreds of
        definitions; nothing here asks them: the release is read from the request, as the result page does once
        access is settled)."""
        if generated.name not in self._versions:
            expression = parse_expression(generated.expression).to_json()
            definition = CohortDefinition.objects.create(
                name=generated.name, owner=self.researcher, project=self.project
            )
            self._versions[generated.name] = CohortDefinitionVersion.objects.create(
                definition=definition,
                number=1,
                expression=expression,
                expression_hash=expression_hash(expression),
                author=self.researcher,
                note="created",
            )
        return self._versions[generated.name]

    def request(self, *generated: Generated) -> RunRequest:
        """The request of a definition answered by the sites of ``generated`` (the same definition at each): made
        once per test, then read as often as the test likes."""
        assert len({g.name for g in generated}) == 1, "one request counts one definition"
        identity = (generated[0].name, tuple(g.site for g in generated))
        if identity not in self._requests:
            version = self.version(generated[0])
            request = RunRequest.objects.create(
                definition=version.definition, version=version, kind=generated[0].kind, requested_by=self.researcher
            )
            for g in generated:
                run = finished_run(
                    version,
                    self.sources[g.site],
                    self.researcher,
                    kind=g.kind,
                    cache_key=f"attack-{request.pk}-{g.site}",
                    result=g.result,
                )
                request.runs.add(run)
            self._requests[identity] = request
        return self._requests[identity]

    def release(self, *generated: Generated, role: str = Role.RESEARCHER) -> dict[str, Any]:
        """The result of ``request(*generated)`` as a user of ``role`` sees it."""
        return run_request_result(request=self.request(*generated), role=role)

    def ptable(self, key: str = "north") -> Ptable:
        """The ptable a site perturbs the researcher's counts with (the site's policy: the defaults here)."""
        rule = rule_for(source=self.sources[key], role=Role.RESEARCHER)
        assert rule.ptable is not None
        return rule.ptable


@contextmanager
def exact_by_grant() -> Iterator[None]:
    """The control of every attack: the portal's rule as it is under an exact-count grant (``rule_for``'s
    ``grant``: still thresholded, not perturbed), handed to every place that asks for a rule while the block runs —
    concept counts included, which no real grant reaches — so that the same attack code, run on exact numbers,
    shows that it does recover the small groups and that the perturbation is what stops it. Real grants and who
    they reach are tested in ``disclosure/tests/test_exact_count_grants.py``."""

    def exact(**kwargs: Any) -> PrivacyRule:
        # Whatever grant the caller found (none, here), the rule of one in force.
        return rule_for(**{**kwargs, "grant": EXACT_GRANT})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cohorts.runs.selectors, "rule_for", exact)
        patch.setattr(cohorts.concept_sets.selectors, "rule_for", exact)
        yield


def at_site(released: dict[str, Any], key: str) -> dict[str, Any]:
    """What a released result says of one site."""
    return next(site for site in released["sites"] if site["source"] == key)


def value(protected: dict[str, Any]) -> int | None:
    """The number a released count shows; None when it is hidden or withheld."""
    return None if protected.get("hidden") else int(protected["value"])
