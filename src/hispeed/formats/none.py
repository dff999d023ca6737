"""The NONE format: no columns at all; the bytes, whatever they hold, are ignored.

ksqlDB uses it for keyless streams (KEY_FORMAT='NONE'). Decoding gives zero columns but keeps
the row count; a null record is still a tombstone. Encoding writes null bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from hispeed.formats.base import (
    Column,
    DecodeResult,
    Format,
    binary_chunk,
    columns_text,
    null_batch,
    null_mask,
    register_format,
)


@register_format
class NoneFormat(Format):
    """Carries nothing: for sources whose key (or value) has no columns."""

    name = "NONE"

    def decode(self, data: pa.Array, columns: Sequence[Column]) -> DecodeResult:
        data = binary_chunk(data)
        return DecodeResult(null_batch((), len(data)), [], null_mask(data))

    def encode(
        self,
        batch: pa.RecordBatch | pa.Table,
        columns: Sequence[Column],
        *,
        null_rows: npt.NDArray[np.bool_] | None = None,
    ) -> pa.Array:
        return pa.nulls(batch.num_rows, type=pa.binary())

    def _unsupported(self, columns: Sequence[Column], *, is_key: bool) -> str | None:
        if columns:
            return (
                "The 'NONE' format can only be used when no columns are defined. "
                f"Got: {columns_text(columns, is_key=is_key)}"
            )
        return None
