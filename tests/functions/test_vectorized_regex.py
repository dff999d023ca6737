"""REGEXP_EXTRACT by column (functions/regex_columns.py, Arrow's RE2) against the row-by-row
reference (`_string.regexp_extract_row`, Python's `re` as `java_regex` translates Java's
syntax): same texts and NULLs over random patterns, inside the subset the engines agree on
and outside it (`$`, `\\d`, possessive and quantified groups, Java's class intersections:
those must fall back to the row path), random groups and texts with line breaks, unicode,
empty and NULL values."""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hispeed.functions._string import regexp_extract_row
from hispeed.functions.regex_columns import re2_form
from hispeed.functions.registry import EvalContext, lookup, rowwise
from hispeed.sql.types import INTEGER, STRING

#: pieces of patterns in the common subset, and outside it
ATOMS = [
    *["a", "b", "&", "=", "é", "😀", ".", "^", "[ab]", "[^&]", "[a-c]", "[^\\n]", "\\.", "\\&"],
    *["\\n", "[-a]", "[a-]", "\\t", "[é-😀]", "\\ ", "٣"],
]
OUTSIDE = ["$", "\\d", "\\w", "\\s", "\\b", "[a&&b]", "[[a]]", "\\Q.\\E", "\\1", "(?i)a", "[]a]"]
QUANTIFIERS = ["", "", "", "*", "+", "?", "*?", "+?", "??", "{2}", "{1,2}", "{0,}"]
QUANTIFIERS_OUTSIDE = ["*+", "{2,1}", "{,2}", "{1001}"]


@st.composite
def patterns(draw: st.DrawFn, depth: int = 0, inside: bool | None = None) -> str:
    """A random pattern: sequences of quantified atoms and groups, with alternations; three in
    four only of the common subset."""
    if inside is None:
        inside = draw(st.integers(0, 3)) > 0
    atoms = ATOMS if inside else ATOMS + OUTSIDE
    quantifiers = QUANTIFIERS if inside else QUANTIFIERS + QUANTIFIERS_OUTSIDE
    group_quantifiers = [""] if inside else ["", "", "*", "?", "+"]
    branches = []
    for _ in range(draw(st.integers(1, 2))):
        parts = []
        for _ in range(draw(st.integers(0, 4))):
            if depth < 2 and draw(st.integers(0, 4)) == 0:
                opening = draw(st.sampled_from(["(", "(", "(?:"]))
                group = opening + draw(patterns(depth + 1, inside)) + ")"
                parts.append(group + draw(st.sampled_from(group_quantifiers)))
            else:
                parts.append(draw(st.sampled_from(atoms)) + draw(st.sampled_from(quantifiers)))
        branches.append("".join(parts))
    return "|".join(branches)


texts = st.lists(st.sampled_from([*"ab&=éc😀\n.^$ ٣", "channel_id="]), max_size=8).map("".join)


def reference(pattern: list[Any], values: list[Any], group: list[Any] | None) -> list[Any]:
    ctx = EvalContext()
    cols = [pa.array(pattern, pa.string()), pa.array(values, pa.string())]
    if group is not None:
        cols.append(pa.array(group, pa.int32()))
    out = rowwise(ctx, cols, STRING, regexp_extract_row, label="REGEXP_EXTRACT")
    return [out.to_pylist(), ctx.errors]


def by_column(pattern: list[Any], values: list[Any], group: list[Any] | None) -> list[Any]:
    fn = lookup("REGEXP_EXTRACT")
    assert fn is not None
    arrays = [pa.array(pattern, pa.string()), pa.array(values, pa.string())]
    types = [STRING, STRING]
    if group is not None:
        arrays.append(pa.array(group, pa.int32()))
        types.append(INTEGER)
    ctx = EvalContext()
    out = fn.evaluate(ctx, arrays, types, STRING)
    assert out.type == pa.string()
    return [out.to_pylist(), ctx.errors]


@pytest.mark.filterwarnings("ignore::FutureWarning")  # Python's re on Java's [[a]] and &&
@settings(
    max_examples=int(os.environ.get("HISPEED_HYPOTHESIS_EXAMPLES", "50")) * 8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    pattern=patterns(),
    values=st.lists(st.one_of(st.none(), texts), min_size=1, max_size=10),
    group=st.one_of(st.none(), st.integers(-1, 4)),
    null_rows=st.booleans(),
)
def test_by_column_matches_the_row_path(
    pattern: str, values: list[str | None], group: int | None, null_rows: bool
) -> None:
    n = len(values)
    patterns_ = [None if null_rows and i % 3 == 2 else pattern for i in range(n)]
    groups = None if group is None else [group] * n
    assert by_column(patterns_, values, groups) == reference(patterns_, values, groups)


URLS = [
    "https://www.nexmark.com/a/b/c/item.htm?query=1&channel_id=1234",
    "https://www.nexmark.com/a/b/c/item.htm?query=1",
    "channel_id=&x=1",
    "a=1&channel_id=x&channel_id=y",
    "xchannel_id=3",
    "&channel_id=é😀\n",
    "",
    None,
]


@pytest.mark.parametrize("group", [0, 1, 2, 3])
def test_nexmark_q21s_pattern(group: int) -> None:
    pattern = "(&|^)channel_id=([^&]*)"
    n = len(URLS)
    got = by_column([pattern] * n, URLS, [group] * n)
    assert got == reference([pattern] * n, URLS, [group] * n)
    if group == 2:
        assert got[0] == ["1234", None, "", "x", None, "é😀\n", None, None]


@pytest.mark.parametrize(
    ("pattern", "taken"),
    [
        ("(&|^)channel_id=([^&]*)", (True, True, True)),
        ("a(b)|c", (True, False)),  # group 1 takes no part when c matches
        ("((a)|b)c", (True, True, False)),
        ("(?:x|(y))z", (True, False)),
        ("[a-c]{1,3}?d", (True,)),
        ("a$", None),  # $ also matches before a final line break, except in RE2
        ("\\d+", None),  # Unicode digits in Python
        ("(ab)*", None),  # a quantified group
        ("a*+", None),  # possessive
        ("[a&&b]", None),  # Java's class intersection
        ("(?<name>a)", None),
        ("a{1001}", None),  # past RE2's repetition limit
        ("(a", None),
        ("a)", None),
    ],
)
def test_which_patterns_take_the_column_path(pattern: str, taken: tuple[bool, ...] | None) -> None:
    form = re2_form(pattern)
    assert (form.always if form is not None else None) == taken
