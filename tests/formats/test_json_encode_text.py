"""JSON encoding of text columns: a column of text with no NULL and nothing to escape has its
quotes written into the text around it (one join per record); every column, whichever way it
goes, must come out as msgspec writes the same record."""

from __future__ import annotations

import msgspec
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from hispeed.formats import Column, get_format
from hispeed.sql import types as T

COLUMNS = [
    Column("A", T.STRING),
    Column("b", T.STRING),
    Column("N", T.BIGINT),
    Column("C", T.STRING),
]
plain = st.text(st.sampled_from(["a", "é", "😀", " ", "/", "'"]), max_size=4)
escaped = st.text(st.sampled_from(["a", '"', "\\", "\n", "\x01", "\u2028"]), max_size=4)


@settings(max_examples=100, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["plain", "escaped", "nulls"]), min_size=3, max_size=3),
    n=st.integers(1, 8),
    skip=st.integers(0, 2),
    data=st.data(),
)
def test_text_columns_as_msgspec_writes_them(
    kinds: list[str], n: int, skip: int, data: st.DataObject
) -> None:
    def column(kind: str) -> list[str | None]:
        values = (
            st.one_of(st.none(), plain)
            if kind == "nulls"
            else (plain if kind == "plain" else escaped)
        )
        return data.draw(st.lists(values, min_size=n + skip, max_size=n + skip))

    a, b, c = (column(k) for k in kinds)
    numbers = data.draw(
        st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n + skip, max_size=n + skip)
    )
    batch = pa.RecordBatch.from_arrays(
        [pa.array(a), pa.array(b), pa.array(numbers, pa.int64()), pa.array(c)],
        names=[col.name for col in COLUMNS],
    ).slice(skip)
    got = get_format("JSON").encode(batch, COLUMNS).to_pylist()
    rows = batch.to_pylist()
    assert got == [msgspec.json.encode(r) for r in rows]
