"""Repeating slot tables (anvil_llvm.backend.placement): what `periodic` claims holds for every
row it claims it of, and sparse derivatives stored period by period equal the reference
interpreter's and the dense ones, on a chain and on a grid whose edge rows do not repeat."""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import anvil_llvm as av
from anvil_llvm.ad import hessian, sphessian
from anvil_llvm.backend import placement
from anvil_llvm.backend.placement import periodic
from anvil_llvm.ir.interpret import evaluate
from anvil_llvm.ir.ops import PLACE
from anvil_llvm.ir.uop import toposort


def assert_claims_hold(slots: np.ndarray, found) -> None:
    """Each row `found` says repeats has, at each place p of each of its periods k, the slot of
    the first period plus k steps (kept) or -1 (not kept)."""
    table = slots.reshape(slots.shape[0], -1, slots.shape[-1])
    rows = np.ones(table.shape[1], bool) if found.rows is None else found.rows
    for k in range(found.periods):
        for p in range(found.period):
            q = found.start + found.period * k + p
            for c, kept in enumerate(found.kept):
                got = table[c, rows, q]
                want = (table[c, rows, found.start + p] + found.step * k if kept[p]
                        else np.full(rows.sum(), -1))
                np.testing.assert_array_equal(got, want, err_msg=f"colour {c}, period {k}, "
                                              f"place {p}")


@st.composite
def tables(draw):
    """Slot tables that repeat (period, kept pattern, step) after a few positions of another
    pattern, some rows breaking off after a random number of periods."""
    colours, period = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    rows, periods, lead = draw(st.integers(1, 6)), draw(st.integers(4, 9)), draw(st.integers(0, 2))
    kept = np.array(draw(st.lists(st.lists(st.booleans(), min_size=period, max_size=period),
                                  min_size=colours, max_size=colours)))
    if not kept.any():
        kept[0, 0] = True
    step = int(kept.sum()) + draw(st.integers(0, 3))
    base = draw(st.integers(0, 50))
    table = np.full((colours, rows, lead + period * periods + 2), -1, np.int64)
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    table[..., :lead] = rng.integers(-1, 1000, (colours, rows, lead))
    table[..., -2:] = rng.integers(-1, 1000, (colours, rows, 2))
    for r in range(rows):
        firsts = base + 1000 * r + rng.permutation(step)[:kept.sum()]
        first = np.full((colours, period), -1, np.int64)
        first[kept] = firsts
        for k in range(periods):
            q = lead + period * k
            table[:, r, q:q + period] = np.where(kept, first + step * k, -1)
        if rng.random() < 0.3:          # this row breaks off
            q = lead + period * int(rng.integers(1, periods))
            table[:, r, q:] = rng.integers(-1, 1000, table[:, r, q:].shape)
    return table


@settings(max_examples=200, deadline=None)
@given(tables())
def test_what_periodic_claims_holds(table):
    found = periodic(table, 0, table.shape[-1])
    if found is not None:
        assert found.periods >= placement.MIN_PERIODS
        assert found.step <= placement.MAX_STEP
        assert_claims_hold(table, found)


def test_a_chain_repeats_and_a_long_step_does_not():
    chain = np.array([[0, -1, 5, 6, -1, 11, 12, -1, 17, 18, -1, 23],
                      [1, 2, -1, 7, 8, -1, 13, 14, -1, 19, 20, -1],
                      [-1, 3, 4, -1, 9, 10, -1, 15, 16, -1, 21, 22]])
    found = periodic(chain, 0, 12)
    assert (found.start, found.period, found.periods, found.step) == (0, 3, 4, 6)
    assert_claims_hold(chain, found)
    q = np.arange(24)
    first = np.array([[0, 4, 8], [1, 5, 6], [2, 3, 7]])     # 3 x 3 a period, in no order
    assert periodic(9 * (q // 3) + first[:, q % 3], 0, 24) is None           # step 9
    first = np.array([[0, 3, 5, 6], [1, 2, 4, 7]])           # 2 x 4 a period
    eight = periodic(8 * (q // 4) + first[:, q % 4], 0, 24)                  # step 8
    assert (eight.period, eight.step) == (4, 8)


def chain(x):
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def grid(x):
    """Rows coupled along themselves; the first two rows also to each other (their slots step
    differently: flagged, stored through the table)."""
    return ((x[:, 1:] - x[:, :-1] ** 2) ** 2).sum() + (x[0] ** 2 * x[1]).sum() + (x ** 4).sum()


@pytest.mark.parametrize("fn, shape, flagged", [(chain, (3000,), False), (grid, (40, 40), True)])
def test_values_stored_period_by_period(fn, shape, flagged):
    f = av.NumericalFunction(fn.__name__, fn, (av.Arg(shape),))
    H = sphessian(f)
    assert "period.head" in H.llvm_ir, "the nest stores period by period"
    (place,) = [n for n in toposort(H.outputs) if n.op is PLACE]
    found = periodic(place.arg[0].array, 0, shape[-1])
    assert (found.rows is not None) == flagged
    x = np.random.default_rng(5).uniform(0.5, 1.5, shape)
    values = H(x)
    np.testing.assert_allclose(values, evaluate(H.outputs, [x])[0], rtol=1e-14, atol=1e-13)
    n = x.size
    got = sp.csc_array((values, H.indices, H.indptr), shape=(n, n)).toarray()
    np.testing.assert_allclose(got, np.triu(hessian(f)(x).reshape(n, n)), rtol=1e-13,
                               atol=1e-12)


def test_a_large_row_table_is_embedded():
    """A grid of 16,900 rows, two planes of which do not repeat: the table flagging the rows
    (the lowering's own, 66 KiB) is embedded in the module, not referenced as one of the
    graph's shared constants (which would leave its symbol unresolved in the JIT)."""
    shape = (130, 130, 24)

    def planes(x):
        return ((x[..., 1:] - x[..., :-1] ** 2) ** 2).sum() + (x[0] ** 2 * x[1]).sum()
    H = sphessian(av.NumericalFunction("planes", planes, (av.Arg(shape),)))
    assert "period.head" in H.llvm_ir
    x = np.random.default_rng(6).uniform(0.5, 1.5, shape)
    np.testing.assert_allclose(H(x), evaluate(H.outputs, [x])[0], rtol=1e-14, atol=1e-13)
