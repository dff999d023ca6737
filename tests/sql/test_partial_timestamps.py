"""Text datetimes compared with ROWTIME and window bounds, read as ksqlDB's
PartialStringToTimestampParser reads them (java.time's SMART resolution)."""

from __future__ import annotations

import pytest

from hispeed.errors import HispeedError
from hispeed.plan.timestamps import parse_partial_timestamp

MIDNIGHT_25TH = 1_582_588_800_000  # 2020-02-25T00:00:00Z


@pytest.mark.parametrize("text", ["2020-02-24T24", "2020-02-24T24:00", "2020-02-24T24:00:00.000"])
def test_hour_24_is_the_midnight_that_ends_the_day(text: str) -> None:
    assert parse_partial_timestamp(text) == MIDNIGHT_25TH == parse_partial_timestamp("2020-02-25")


def test_hour_24_with_minutes_is_refused() -> None:
    with pytest.raises(HispeedError, match="Failed to parse timestamp '2020-02-24T24:01'"):
        parse_partial_timestamp("2020-02-24T24:01")
