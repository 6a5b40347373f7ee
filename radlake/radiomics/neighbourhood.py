"""Directions and neighbourhoods of IBSI 1 texture matrices, and shifted views of a padded volume.

Arrays are indexed (z, y, x); a slice is a fixed z. In 2D only in-slice offsets are used.
"""

from __future__ import annotations

import itertools

import numpy as np

# The 13 unique 3D directions and the 4 unique in-slice directions (as (dz, dy, dx) unit offsets).
DIRECTIONS_3D: tuple[tuple[int, int, int], ...] = tuple(
    d for d in itertools.product((-1, 0, 1), repeat=3) if d > (0, 0, 0)
)
DIRECTIONS_2D: tuple[tuple[int, int, int], ...] = tuple(d for d in DIRECTIONS_3D if d[0] == 0)
# the same as int64 rows, as the compiled kernels take them (read-only: shared by every call)
_DIRECTION_ROWS = {in_slice: np.array(DIRECTIONS_2D if in_slice else DIRECTIONS_3D, dtype=np.int64)
                   for in_slice in (False, True)}
for _rows in _DIRECTION_ROWS.values():
    _rows.flags.writeable = False


def direction_rows(in_slice: bool) -> np.ndarray:
    """:data:`DIRECTIONS_2D` (``in_slice``) or :data:`DIRECTIONS_3D` as an int64 array of ``(dz, dy, dx)`` rows."""
    return _DIRECTION_ROWS[in_slice]


def neighbours(distance: int, in_slice: bool) -> tuple[tuple[int, int, int], ...]:
    """All offsets within Chebyshev ``distance`` of the centre, the centre excluded."""
    span = range(-distance, distance + 1)
    dz = (0,) if in_slice else span
    return tuple(d for d in itertools.product(dz, span, span) if d != (0, 0, 0))


def level_dtype(n_levels: int) -> np.dtype:
    """Smallest signed integer type for levels 0..n_levels (less memory traffic per pass)."""
    return np.dtype(np.int16) if n_levels < np.iinfo(np.int16).max else np.dtype(np.int32)


def pad(levels: np.ndarray, width: int, fill=0) -> np.ndarray:
    """Pad every axis by ``width`` with ``fill`` (0: outside the ROI) so that every offset view stays in
    bounds. Same result as ``np.pad(..., constant_values=fill)``, without its per-call overhead
    (tens of microseconds, paid several times per ROI)."""
    padded = np.full(tuple(n + 2 * width for n in levels.shape), fill, dtype=levels.dtype)
    padded[tuple(slice(width, width + n) for n in levels.shape)] = levels
    return padded


def shifted(padded, width: int, offset: tuple[int, int, int]):
    """View of ``padded`` holding, at each unpadded position p, the value at p + offset."""
    z, y, x = offset
    nz, ny, nx = (padded.shape[i] - 2 * width for i in range(3))
    return padded[width + z : width + z + nz, width + y : width + y + ny, width + x : width + x + nx]


def centre(padded, width: int):
    return shifted(padded, width, (0, 0, 0))
