"""The same set of persons always gets the same released number; 0 stays 0; counts 1..k-1 are withheld."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from disclosure.cellkey import cell_key, perturb, record_key
from disclosure.ptable import PtableError, PtableParameters, generate_ptable

PTABLE = generate_ptable(PtableParameters(3, 2, 10))
SECRET = b"site secret of hospital A"


def released(secret: bytes, persons: list[int]) -> int | None:
    return perturb(len(persons), cell_key(record_key(secret, p) for p in persons), PTABLE)


def test_record_keys_are_1_to_255_and_look_uniform() -> None:
    keys = [record_key(SECRET, person) for person in range(1, 25_501)]
    assert min(keys) == 1 and max(keys) == 255
    counts = Counter(keys)
    assert len(counts) == 255
    # 100 expected per key: a chi-square far beyond chance would mean a skewed derivation.
    chi_square = sum((c - 100) ** 2 / 100 for c in counts.values())
    assert chi_square < 350  # 254 degrees of freedom: the 99.99th percentile is about 345


def test_record_keys_depend_on_the_site_secret() -> None:
    persons = range(1, 1001)
    same = sum(record_key(SECRET, p) == record_key(b"another site", p) for p in persons)
    assert same < 20  # about 4 of 1000 by chance
    assert record_key(SECRET, 42) == record_key(SECRET, 42)
    with pytest.raises(ValueError, match="must not be empty"):
        record_key(b"", 42)


def test_a_cell_key_is_the_sum_of_record_keys_modulo_256() -> None:
    assert cell_key([]) == 0
    assert cell_key([255, 1]) == 0
    assert cell_key([200, 100, 7]) == 51


def test_the_same_persons_get_the_same_number_in_any_order_and_on_every_request() -> None:
    rng = random.Random(7)
    for _ in range(200):
        persons = rng.sample(range(1, 100_000), rng.randint(10, 500))
        first = released(SECRET, persons)
        shuffled = persons[:]
        rng.shuffle(shuffled)
        assert released(SECRET, shuffled) == first
        assert released(SECRET, sorted(persons)) == first


def test_zero_stays_zero_small_counts_are_withheld_and_the_rest_stay_within_d() -> None:
    assert perturb(0, 0, PTABLE) == 0
    for n in range(1, 10):
        assert all(perturb(n, key, PTABLE) is None for key in range(256))
    for n in (10, 11, 12, 13, 57, 10_000):
        for key in range(256):
            value = perturb(n, key, PTABLE)
            assert value is not None and value >= 10 and abs(value - n) <= 3


def test_perturb_refuses_impossible_inputs() -> None:
    with pytest.raises(PtableError, match="a cell key is 0..255"):
        perturb(20, 256, PTABLE)
    with pytest.raises(PtableError, match="cannot be negative"):
        perturb(-1, 0, PTABLE)
