"""Counts in messages agree with their nouns ("1 point", "2 points"), never "point(s)"."""

import pytest

from vcm.words import counted, noun


@pytest.mark.parametrize("n, expected", [(0, "0 points"), (1, "1 point"), (2, "2 points"), (1200, "1,200 points")])
def test_a_count_takes_the_noun_that_agrees_with_it(n, expected):
    assert counted(n, "point") == expected


def test_an_irregular_plural_is_given():
    assert (noun(1, "is", "are"), noun(3, "is", "are")) == ("is", "are")
    assert counted(2, "Ray task") == "2 Ray tasks"


def test_differences_name_each_field_that_differs_in_order_and_count_the_rest():
    from vcm.words import differences

    old, now = {"a": 1, "b": 2, "c": 3}, {"b": 2, "c": 4, "d": 5}
    assert differences(old, now) == "a 1, now None; c 3, now 4; d None, now 5"
    assert differences(old, now, shown=1) == "a 1, now None; and 2 more"
    assert differences(old, dict(old)) == ""
