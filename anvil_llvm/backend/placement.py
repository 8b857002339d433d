"""The periodic structure of a placement's slot table, which lets its stores go to addresses
computed from the loop counter instead of read from the table.

A sparse derivative's placement (PLACE with its colours unrolled, ad/sparse.py) stores every
colour's value at each position of a nest through the slot table: data-dependent addresses,
which LLVM can only scatter. On a grid coloured by a lattice (a stencil's Jacobian or Hessian)
the table repeats along the nest's innermost axis: slot[c, row, q + P] = slot[c, row, q] + D
for a small period P, one step D, and the same dropped slots (-1) in every period. A row whose
slots do so is stored P positions per iteration at base + D * iteration, the bases (its first
P slots) read once per row: LLVM sees strided stores of constant stride and vectorises them as
interleaved groups, as for a hand-written loop. Rows that do not repeat (a grid's edges) keep
the table.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_PERIOD = 8
MIN_PERIODS = 4       # a row repeats over at least this many periods, or the table is kept
MAX_STEP = 8
"""At most this step: LLVM vectorises strided stores as one interleaved group when the stride
is at most 8 elements (its max-interleave-group-factor); with a larger one it scatters each
element, and the loop ran slower than through the table (measured: step 25, the 5-colour
bratu2d Jacobian, 2x slower; step 9, a 3-colour tridiagonal Jacobian, 15% slower)."""


@dataclass(frozen=True)
class Periodic:
    """Slots that repeat along the innermost axis from `start` on, for `periods` periods of
    `period` positions, each period's slots `step` above the last; `kept[c][p]`: colour c's
    slot at phase p is stored (not -1); `rows`: which rows (the flat index of the outer axes)
    repeat so, None when all do."""

    start: int
    period: int
    periods: int
    step: int
    kept: tuple[tuple[bool, ...], ...]
    rows: np.ndarray | None


def periodic(slots: np.ndarray, start: int, stop: int) -> Periodic | None:
    """How the slot table `slots` (colours, *outer, innermost) repeats along its innermost
    axis within [start, stop): the shortest period of at most MAX_PERIOD, from the first
    position where the middle row starts repeating (a grid's near edge may come before), and
    the most periods with which at least half of the rows repeat (one step for all; a row may
    differ after them, at the far edge); None when there is none or its step is more than
    MAX_STEP.

    >>> import numpy as np
    >>> slots = np.array([[-1, 0, -1, 5, 6, -1, 11, 12, -1, 17, 18, -1, 23, 24, 30]])
    >>> found = periodic(slots, 0, 15)
    >>> found.start, found.period, found.periods, found.step, found.kept
    (1, 3, 4, 6, ((True, False, True),))
    """
    table = slots[..., start:stop].reshape(slots.shape[0], -1, stop - start)
    middle = table.shape[1] // 2
    for lead in range(min(MAX_PERIOD, table.shape[2])):
        for period in range(1, min(MAX_PERIOD, (table.shape[2] - lead) // MIN_PERIODS) + 1):
            step = _step(table[:, middle, lead:], period)
            if step is not None:
                return (_repeats(table[..., lead:], start + lead, period, step)
                        if step <= MAX_STEP else None)
    return None


def _repeats(table: np.ndarray, start: int, period: int, step: int) -> Periodic | None:
    """The `Periodic` of `table` (colours, rows, positions from `start`) for a period and
    step found on its middle row, or None."""
    table = table.astype(np.int64)
    length, middle = table.shape[2], table.shape[1] // 2
    later, earlier = table[..., period:], table[..., :-period]
    agree = (((later - earlier == step) | (earlier < 0)) & (
        (later >= 0) == (earlier >= 0))).all(axis=0)                  # (rows, length - period)
    # a row's periods: up to the first position that disagrees with the next period
    broken = np.where(agree.all(axis=1), agree.shape[1], np.argmin(agree, axis=1))
    periods = np.minimum(broken // period + 1, length // period)
    kept = table[..., :period] >= 0                                     # (colours, rows, period)
    pattern = kept[:, middle]
    same = (kept == pattern[:, None, :]).all(axis=(0, 2))
    most = int(np.sort(np.where(same, periods, 0))[(table.shape[1] - 1) // 2])
    if most < MIN_PERIODS:
        return None
    rows = same & (periods >= most)
    return Periodic(start, period, most, step, tuple(tuple(map(bool, k)) for k in pattern),
                    None if rows.all() else rows)


def _step(row: np.ndarray, period: int) -> int | None:
    """The step between a row's slots one period apart (colours, positions), if it is one
    over its first MIN_PERIODS periods, where both are stored and no other is."""
    row = row[:, :MIN_PERIODS * period].astype(np.int64)
    later, earlier = row[:, period:], row[:, :-period]
    if ((later >= 0) != (earlier >= 0)).any():
        return None
    steps = np.unique((later - earlier)[earlier >= 0])
    return int(steps[0]) if steps.size == 1 and steps[0] > 0 else None
