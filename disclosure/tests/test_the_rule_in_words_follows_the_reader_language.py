"""A privacy rule reads in the reader's language (its ``description`` and ``short``), while the fields scripts read
(``method``, ``min_cell``, ``round_to``, ``grant``, the perturbation's parameters) are the same in every language."""

from __future__ import annotations

import sys

import pytest
from django.conf import settings
from django.utils import translation
from django.utils.translation import trans_real

from disclosure.selectors import rule_for
from disclosure.tests.test_rules import site


@pytest.fixture(scope="module", autouse=True)
def compiled_catalogue() -> None:
    """What `make messages` does, so the test also runs under plain pytest; then forget any catalogue already
    loaded by this process so the fresh .mo is read."""
    sys.path.insert(0, str(settings.BASE_DIR / "scripts"))
    try:
        from compile_messages import compile_all
    finally:
        sys.path.pop(0)
    compile_all()
    trans_real._translations = {}
    trans_real._default = None
    trans_real._active = trans_real.Local()


def test_a_partner_reads_the_rule_in_korean_and_the_fields_stay_the_same() -> None:
    partner = rule_for(source=site(), role="partner")
    granted = rule_for(source=site(), role="researcher", grant=7)
    with translation.override("en"):
        english = partner.as_dict()
        assert english["description"] == "perturbed (at most ±3), counts under 10 hidden, rounded to the nearest 10"
        assert granted.short() == "exact (grant #7), <10 hidden"
    with translation.override("ko"):
        korean = partner.as_dict()
        assert korean["description"] == "교란됨(최대 ±3), 10 미만은 숨김, 10 단위로 반올림"
        assert korean["short"] == "±3, <10 숨김, 10 단위 반올림"
        assert granted.describe() == "허가 #7에 따른 정확한 값, 10 미만은 숨김"
    assert {k: v for k, v in korean.items() if k not in ("description", "short")} == {
        k: v for k, v in english.items() if k not in ("description", "short")
    }
