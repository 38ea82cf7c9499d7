"""The attrition table (initial row, kept, lost, % of initial, each rule alone, by person and by event) releases
every count through the site's rule and works lost and percentages out of the *released* numbers only: a hidden
count is never recoverable from kept, lost or %, whatever hid it; results stored before the initial row and the
by-event mode still render; the CSV writes numbers as numbers.
"""

from __future__ import annotations

import csv
import io
import random
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from cohorts.definitions.services import definition_create, definition_share
from cohorts.runs.attrition import merged_attrition, protected_attrition
from cohorts.runs.choices import RunKind
from cohorts.runs.models import CohortRun, RunRequest
from cohorts.runs.selectors import run_result_csv, run_result_table
from cohorts.tests.expressions import EXPRESSION
from cohorts.tests.runs import DEFAULT_PTABLE
from disclosure.rules import NOT_RELEASED, PrivacyRule, protect, protect_federated
from jobs.choices import JobState

EXACT = PrivacyRule(min_cell=10)  # exact by grant: no noise, so a subtraction would give the truth back
PERTURBED = PrivacyRule(min_cell=10, ptable=DEFAULT_PTABLE)
ROUNDED = PrivacyRule(min_cell=10, round_to=10, ptable=DEFAULT_PTABLE)


def site_result(
    initial: int, steps: list[int], alone: list[int], *, events: int | None = None, keys: random.Random | None = None
) -> dict[str, Any]:
    """A run's stored result as a worker writes it, with cell keys (random, or 0)."""
    rng = keys or random.Random(0)

    def key() -> int:
        return rng.randrange(256)

    names = [f"rule {i}" for i in range(1, len(steps) + 1)]
    result: dict[str, Any] = {
        "persons": steps[-1] if steps else initial,
        "persons_key": key(),
        "rows": steps[-1] if steps else initial,
        "initial": {"persons": initial, "key": key()},
        "inclusion_rules": [{"name": n, "persons": c, "key": key()} for n, c in zip(names, alone, strict=True)],
        "attrition": [{"name": n, "persons": c, "key": key()} for n, c in zip(names, steps, strict=True)],
    }
    if events is not None:
        factor = events / initial
        result["by_event"] = {
            "initial": {"events": events, "key": key()},
            "inclusion_rules": [
                {"name": n, "events": round(c * factor), "key": key()} for n, c in zip(names, alone, strict=True)
            ],
            "attrition": [
                {"name": n, "events": round(c * factor), "key": key()} for n, c in zip(names, steps, strict=True)
            ],
        }
    return result


def released_values(table: dict[str, Any]) -> list[Any]:
    """Every value the table shows, counts and derived numbers alike."""
    out = []
    for mode in ("person", "event"):
        shown = table.get(mode)
        if not shown:
            continue
        out.append(shown["initial"]["value"] if shown["initial"] else None)
        for step in shown["steps"]:
            out += [step[name]["value"] for name in ("kept", "lost", "percent", "own", "own_percent")]
    return [value for value in out if value is not None]


def test_a_hidden_step_hides_its_lost_its_percent_and_the_next_steps_lost() -> None:
    # Exact by grant, so anything shown is the truth: step 2 (8 persons) and step 3 (5) are hidden.
    released = protected_attrition(site_result(500, [120, 8, 5], [120, 300, 45]), EXACT)
    table = released["person"]
    one, two, three = table["steps"]
    assert table["initial"]["display"] == "500"
    assert (one["kept"]["value"], one["lost"]["value"], one["percent"]["value"]) == (120, 380, 24.0)
    assert two["kept"] == {"value": None, "display": "<10", "hidden": True}
    for cell in (two["lost"], two["percent"], three["lost"], three["percent"]):
        assert cell == {"value": None, "display": "hidden", "hidden": True}
    # The rules alone are cells of their own, each shown or hidden by itself.
    assert [s["own"]["value"] for s in table["steps"]] == [120, 300, 45]
    assert [s["own_percent"]["value"] for s in table["steps"]] == [24.0, 60.0, 9.0]
    # Neither the hidden steps nor their differences with a shown neighbour appear anywhere.
    shown = released_values(released)
    assert len(shown) == 10
    for secret in (8, 5, 120 - 8, 8 - 5, 1.6, 1.0):
        assert secret not in shown, secret


def test_a_count_released_without_a_key_hides_what_it_would_recover() -> None:
    # A step with no cell key is not released under a perturbing rule: its neighbours' lost must not rebuild it.
    result = site_result(900, [400, 300, 200], [400, 350, 250])
    result["attrition"][1]["key"] = None
    table = protected_attrition(result, PERTURBED)["person"]
    one, two, three = table["steps"]
    assert two["kept"]["display"] == NOT_RELEASED and two["kept"]["hidden"]
    assert two["lost"]["hidden"] and two["percent"]["hidden"] and three["lost"]["hidden"]
    assert not one["lost"]["hidden"] and not three["percent"]["hidden"]


@pytest.mark.parametrize("rule", [PERTURBED, ROUNDED, EXACT], ids=["perturbed", "rounded", "exact"])
def test_lost_and_percent_are_functions_of_the_released_numbers(rule: PrivacyRule) -> None:
    rng = random.Random(7)
    for _ in range(200):
        initial = rng.randrange(30, 5000)
        steps = sorted((rng.randrange(10, initial + 1) for _ in range(rng.randrange(1, 6))), reverse=True)
        alone = [rng.randrange(steps[i], initial + 1) for i in range(len(steps))]
        result = site_result(initial, steps, alone, events=initial * 3, keys=rng)
        table = protected_attrition(result, rule)
        for mode, count_of in (("person", "persons"), ("event", "events")):
            shown = table[mode]
            stored = result if mode == "person" else result["by_event"]
            first = stored["initial"]
            released_initial = protect(first[count_of], rule, first["key"])
            assert shown["initial"] == released_initial.as_dict()
            before = released_initial.value
            for step, kept_cell, own_cell in zip(
                shown["steps"], stored["attrition"], stored["inclusion_rules"], strict=True
            ):
                kept = protect(kept_cell[count_of], rule, kept_cell["key"])
                own = protect(own_cell[count_of], rule, own_cell["key"])
                assert step["kept"] == kept.as_dict() and step["own"] == own.as_dict()
                assert step["lost"]["value"] == max(before - kept.value, 0)
                assert step["percent"]["value"] == min(round(100 * kept.value / released_initial.value, 1), 100.0)
                assert step["own_percent"]["value"] == min(round(100 * own.value / released_initial.value, 1), 100.0)
                before = kept.value


def test_a_result_stored_before_the_initial_row_still_renders_what_it_has() -> None:
    old = {
        "persons": 70,
        "persons_key": 0,
        "inclusion_rules": [{"name": "aged 40 or more", "persons": 73, "key": 0}],
        "attrition": [{"name": "aged 40 or more", "persons": 73, "key": 0}],
    }
    table = protected_attrition(old, EXACT)
    assert table["event"] is None
    assert table["person"]["initial"] is None
    (step,) = table["person"]["steps"]
    assert step["kept"]["value"] == 73 and step["own"]["value"] == 73
    assert step["lost"] == step["percent"] == {"value": None, "display": "", "hidden": False}


# ---- through the pages: the status JSON, the CSV -----------------------------------------------------------------


@pytest.fixture
def attrition_request(alice: Any, project: Any, source: Any) -> RunRequest:
    source.fingerprint = "f" * 64
    source.save(update_fields=["fingerprint"])
    definition = definition_create(owner=alice, name="Attrition", expression=EXPRESSION, project=project)
    definition_share(definition=definition, by=alice, to_project=project)
    version = definition.latest_version()
    request = RunRequest.objects.create(
        definition=definition, version=version, kind=RunKind.ATTRITION, requested_by=alice
    )
    run = CohortRun.objects.create(
        version=version,
        source=source,
        kind=RunKind.ATTRITION,
        cache_key="attrition-table",
        source_fingerprint=source.fingerprint,
        requested_by=alice,
        state=JobState.SUCCEEDED,
        result=site_result(2000, [1500, 900], [1500, 1100], events=5200, keys=random.Random(3)),
    )
    request.runs.add(run)
    return request


@pytest.mark.django_db
def test_the_status_and_the_csv_carry_the_table_with_numbers_as_numbers(alice: Any, attrition_request: Any) -> None:
    client = Client()
    client.force_login(alice)
    status = client.get(reverse("cohorts:run_status", args=[attrition_request.pk])).json()
    (site,) = status["sites"]
    table = site["attrition_table"]
    assert table["person"]["initial"]["value"] and table["event"]["initial"]["value"]
    assert [s["name"] for s in table["event"]["steps"]] == ["rule 1", "rule 2"]

    header, rows = run_result_table(status, "attrition")
    assert header[:6] == ["site", "mode", "step", "rule", "persons", "events"]
    assert [(row[1], row[2]) for row in rows] == [
        ("person", 0),
        ("person", 1),
        ("person", 2),
        ("event", 0),
        ("event", 1),
        ("event", 2),
    ]
    column = {name: i for i, name in enumerate(header)}
    person_step = rows[1]
    assert person_step[column["persons"]] == table["person"]["steps"][0]["kept"]["value"]
    assert person_step[column["events"]] == ""
    assert person_step[column["lost"]] == table["person"]["steps"][0]["lost"]["value"]
    assert isinstance(person_step[column["percent of initial"]], float)
    assert rows[3][column["events"]] == table["event"]["initial"]["value"]

    body = client.get(reverse("cohorts:run_table_csv", args=[attrition_request.pk, "attrition"])).content.decode()
    assert body == run_result_csv(status, "attrition")
    parsed = list(csv.reader(io.StringIO(body)))
    # Digits only: no thousands separator nor percent sign for a spreadsheet to read as text.
    for row in parsed[1:]:
        for name in ("persons", "events", "lost", "percent of initial", "rule alone", "rule alone percent of initial"):
            cell = row[parsed[0].index(name)]
            assert cell == "" or float(cell) >= 0, (name, cell)
            assert "," not in cell and "%" not in cell


# ---- several sites together ----------------------------------------------------------------------------------------


def test_the_sites_together_release_each_number_as_one_cell_like_the_merged_total() -> None:
    rng = random.Random(11)
    north = site_result(2000, [1500, 900], [1500, 1100], events=5200, keys=rng)
    south = site_result(1800, [1200, 700], [1200, 1000], events=4000, keys=rng)
    merged = merged_attrition([(north, PERTURBED), (south, ROUNDED)])
    assert merged is not None and merged["privacy"]["round_to"] == 10  # the strictest of the two rules
    rules = [PERTURBED, ROUNDED]

    def together(cells: list[tuple[int, int]]) -> dict[str, Any]:
        return protect_federated(cells, rules)[0].as_dict()

    for mode, stats, unit in (("person", lambda r: r, "persons"), ("event", lambda r: r["by_event"], "events")):
        table = merged[mode]
        parts = [stats(north), stats(south)]
        assert table["initial"] == together([(p["initial"][unit], p["initial"]["key"]) for p in parts])
        before = table["initial"]["value"]
        for i, step in enumerate(table["steps"]):
            assert step["kept"] == together([(p["attrition"][i][unit], p["attrition"][i]["key"]) for p in parts])
            assert step["own"] == together(
                [(p["inclusion_rules"][i][unit], p["inclusion_rules"][i]["key"]) for p in parts]
            )
            assert step["lost"]["value"] == max(before - step["kept"]["value"], 0)
            assert step["percent"]["value"] == round(100 * step["kept"]["value"] / table["initial"]["value"], 1)
            before = step["kept"]["value"]


def test_a_site_part_hidden_leaves_the_merged_step_a_lower_bound_and_its_lost_hidden() -> None:
    north = site_result(900, [400, 300], [400, 350])
    south = site_result(800, [500, 450], [500, 460])
    south["attrition"][0]["key"] = None  # not released at the site under a perturbing rule
    merged = merged_attrition([(north, PERTURBED), (south, PERTURBED)])
    assert merged is not None
    one, two = merged["person"]["steps"]
    assert one["kept"]["hidden"] and one["kept"]["value"] is None and "<10" in one["kept"]["display"]
    assert one["lost"]["hidden"] and one["percent"]["hidden"] and two["lost"]["hidden"]
    assert not two["kept"]["hidden"] and not two["percent"]["hidden"]


def test_a_site_without_the_new_fields_leaves_them_out_of_the_merged_attrition() -> None:
    new = site_result(900, [400], [400], events=2000)
    old = {k: v for k, v in site_result(800, [500], [500]).items() if k != "initial"}
    merged = merged_attrition([(new, EXACT), (old, EXACT)])
    assert merged is not None and merged["event"] is None and merged["person"]["initial"] is None
    (step,) = merged["person"]["steps"]
    assert step["kept"]["value"] == 900 and step["lost"]["display"] == ""


@pytest.fixture
def two_sites(alice: Any, project: Any, source: Any, other_source: Any) -> dict[str, Any]:
    project.sources.add(other_source)
    for site in (source, other_source):
        site.fingerprint = "f" * 64
        site.save(update_fields=["fingerprint"])
    definition = definition_create(owner=alice, name="Two sites", expression=EXPRESSION, project=project)
    definition_share(definition=definition, by=alice, to_project=project)
    return {"definition": definition, "sources": (source, other_source)}


def attrition_on(two_sites: dict[str, Any], alice: Any, results: list[dict[str, Any]]) -> RunRequest:
    version = two_sites["definition"].latest_version()
    request = RunRequest.objects.create(
        definition=version.definition, version=version, kind=RunKind.ATTRITION, requested_by=alice
    )
    for number, (site, result) in enumerate(zip(two_sites["sources"], results, strict=True)):
        run = CohortRun.objects.create(
            version=version,
            source=site,
            kind=RunKind.ATTRITION,
            cache_key=f"merged-attrition-{request.pk}-{number}",
            source_fingerprint=site.fingerprint,
            requested_by=alice,
            state=JobState.SUCCEEDED,
            result=result,
        )
        request.runs.add(run)
    return request


@pytest.mark.django_db
def test_the_page_merges_shown_sites_and_withholds_the_merge_when_a_site_is_hidden(
    alice: Any, two_sites: dict[str, Any]
) -> None:
    client = Client()
    client.force_login(alice)
    rng = random.Random(5)
    shown = attrition_on(two_sites, alice, [site_result(2000, [1500], [1500], events=4000, keys=rng)] * 2)
    status = client.get(reverse("cohorts:run_status", args=[shown.pk])).json()
    assert status["merged_attrition"]["person"]["initial"]["value"] > 3900
    assert status["merged_attrition_withheld"] is False
    header, rows = run_result_table(status, "attrition")
    assert [row[0] for row in rows].count("all sites") == 4  # initial and one step, by person and by event

    # A site whose total is hidden (6 persons): no attrition there, none of the sites together either.
    small = site_result(40, [6], [6], events=90, keys=rng)
    hidden = attrition_on(two_sites, alice, [site_result(2000, [1500], [1500], events=4000, keys=rng), small])
    status = client.get(reverse("cohorts:run_status", args=[hidden.pk])).json()
    assert "merged_attrition" not in status and status["merged_attrition_withheld"] is True
    assert [site["attrition_table"] for site in status["sites"]].count(None) == 1
    page = client.get(reverse("cohorts:run_detail", args=[hidden.pk])).content.decode()
    assert "No breakdown of all sites together: a site's count is under its threshold." in page
    body = client.get(reverse("cohorts:run_table_csv", args=[hidden.pk, "attrition"])).content.decode()
    parsed = list(csv.reader(io.StringIO(body)))
    withheld = [row for row in parsed[1:] if row[0] in ("all sites", two_sites["sources"][1].key)]
    assert len(withheld) == 2
    for row in withheld:
        assert not any(char.isdigit() for char in "".join(row[:-1])), row
