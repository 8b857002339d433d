"""Loops: one traced body repeated by a native loop, and every rule of it.

A loop is a scan (JAX's `lax.scan`, CasADi's `mapaccum`): `length` iterations of a body, a graph
over PARAM placeholders

    (index, carry..., x..., constant...) -> (new carry..., y...)

where `x` is the current slice of each scanned array, `constant` the values the body reads from
outside (closed over, hoisted out of the body when the loop is built) and `index` the iteration
number (int64; counting down when `reverse`). The loop's results are the final carries and each
`y` stacked along a new leading axis of `length`. A LOOP node is one of these results
(`Scan.output`); its siblings, the other results, are the same node with another `output`, so
each result has its own shape and dtype and the graph stays a DAG of single-valued nodes.

The transforms turn a loop into loops: the JVP is a loop over the body's JVP, carrying the
tangents beside the values; the VJP runs the body forward storing the carries, then a loop in
the opposite direction over the body's VJP, carrying the carries' cotangents and summing the
constants'; vmap batches the body (a carry is batched when anything batched reaches it).
The body is never unrolled, so the graph's size, the code's size and the build time do not
depend on the trip count.
"""
from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import numpy as np

from ..uop import Linearity, OpDef, OpKind, UOp, graph_digest, substitute, toposort
from .movement import VIEWS
from .source import CONST, CONST_ARRAY, INPUT, IOTA

PARAM = OpDef(
    "param", 0, kind=OpKind.SOURCE,
    shape=lambda shapes, arg: arg[2],
    dtype=lambda dts, arg: arg[3],
    numpy=None,
)
"""arg = (depth, position, shape, dtype): an argument of a loop body nested `depth` loops deep."""


class Body:
    """A loop body: its PARAM nodes in order and the nodes it returns. Equal bodies are the
    same nodes (nodes are interned), so tracing one body twice gives one loop."""

    __slots__ = ("params", "outputs", "_hash", "_key")

    def __init__(self, params: Sequence[UOp], outputs: Sequence[UOp]):
        self.params, self.outputs = tuple(params), tuple(outputs)
        self._hash = hash((self.params, self.outputs))
        self._key = None

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        return (isinstance(other, Body) and self.params == other.params
                and self.outputs == other.outputs)

    @property
    def depth(self) -> int:
        return self.params[0].arg[0]

    @property
    def stable_key(self) -> tuple:
        """The same spelling in every process (the compiled code's cache key)."""
        if self._key is None:
            digest = graph_digest(self.params + self.outputs)
            if digest is None:
                raise TypeError("a loop body with an argument that has no stable spelling")
            self._key = digest
        return (self._key,)

    def __repr__(self) -> str:
        return f"Body({len(self.params)} params, {len(self.outputs)} outputs)"


@dataclass(frozen=True)
class Scan:
    """The argument of a LOOP node: the body, the trip count, how the sources split into
    `carries` initial carries, `xs` scanned arrays and constants, the direction, and which of
    the results (final carries, then stacked ys) this node is."""

    body: Body
    length: int
    carries: int
    xs: int
    reverse: bool
    output: int

    @property
    def stable_key(self) -> tuple:
        return (self.body.stable_key, self.length, self.carries, self.xs, self.reverse,
                self.output)

    @property
    def inner_outputs(self) -> tuple[UOp, ...]:
        """The body's graph (what walks over nested graphs follow)."""
        return self.body.outputs

    def split(self, items: Sequence) -> tuple[list, list, list]:
        """`items` in the order of the sources, as (carries, xs, constants)."""
        c, x = self.carries, self.carries + self.xs
        return list(items[:c]), list(items[c:x]), list(items[x:])

    def roles(self) -> tuple[UOp, list[UOp], list[UOp], list[UOp]]:
        """The body's params as (index, carries, xs, constants)."""
        return (self.body.params[0], *self.split(self.body.params[1:]))


def _result(node_shapes, arg: Scan):
    out = arg.body.outputs[arg.output]
    return out.shape if arg.output < arg.carries else (arg.length,) + out.shape


def _numpy(arg: Scan, *values) -> np.ndarray:
    return run(arg, values)[arg.output]


def run(arg: Scan, values: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Every result of the loop, computed by the NumPy reference interpreter."""
    from ..interpret import evaluate
    body = arg.body
    carry, xs, consts = arg.split([np.asarray(v) for v in values])
    ys = [np.empty((arg.length,) + o.shape, o.dtype.np) for o in body.outputs[arg.carries:]]
    order = toposort(body.outputs)
    for i in (reversed(range(arg.length)) if arg.reverse else range(arg.length)):
        bound = dict(zip(body.params, [np.int64(i), *carry, *(x[i] for x in xs), *consts]))
        out = evaluate(body.outputs, (), bound, order)
        carry = out[:arg.carries]
        for y, value in zip(ys, out[arg.carries:]):
            y[i] = value
    return list(carry) + ys


def siblings(node: UOp) -> list[UOp]:
    """All results of the loop `node` is one of, in order."""
    return [UOp(LOOP, node.src, replace(node.arg, output=k))
            for k in range(len(node.arg.body.outputs))]


# ---- building loops ---------------------------------------------------------------------------
_tracing = threading.local()


@contextlib.contextmanager
def body_depth() -> Iterator[int]:
    """The nesting depth of a body being traced (its PARAMs' depth), one deeper inside."""
    depth = getattr(_tracing, "depth", 0)
    _tracing.depth = depth + 1
    try:
        yield depth
    finally:
        _tracing.depth = depth


def param(depth: int, position: int, shape: tuple, dtype) -> UOp:
    return UOp(PARAM, (), (depth, position, tuple(shape), dtype))


class _Params:
    """Fresh PARAMs of a body's depth, at positions after its existing ones."""

    def __init__(self, body: Body):
        self.depth = body.depth
        self.next = 1 + max(p.arg[1] for p in body.params)

    def like(self, node: UOp, shape: tuple | None = None) -> UOp:
        self.next += 1
        return param(self.depth, self.next - 1, node.shape if shape is None else shape,
                     node.dtype)


def _is_leaf_constant(node: UOp) -> bool:
    return node.op in (CONST, CONST_ARRAY, IOTA)


def loop(index: UOp, carry: Sequence[UOp], xs_params: Sequence[UOp],
         consts: Sequence[tuple[UOp, UOp]], outputs: Sequence[UOp], init: Sequence[UOp],
         xs: Sequence[UOp], length: int, reverse: bool = False) -> list[UOp]:
    """Every result of a loop (final carries, then stacked ys).

    The body has the params `index`, `carry` (one per `init`), `xs_params` (one per scanned
    array of `xs`: its slice) and the params of `consts` ((param, value outside) pairs), and
    returns `outputs`: the new carries, then the ys. Values the body reads from outside other
    than constants (the enclosing function's inputs, anything computed from them) become
    constants of the loop, read by new params; constants the body no longer reads are dropped.
    """
    from ..simplify import simplify
    outputs = simplify(outputs)
    consts = list(consts)
    inner = set([index, *carry, *xs_params, *(p for p, _ in consts)])
    outside: dict[UOp, bool] = {}      # not computed from the params: is it a pure constant?
    hoisted: list[UOp] = []
    for node in toposort(outputs):
        if node in inner or any(s in inner for s in node.src):
            inner.add(node)
            hoisted.extend(s for s in node.src if s in outside and not outside[s])
        else:
            outside[node] = (_is_leaf_constant(node) or node.op not in (INPUT, PARAM)
                             and bool(node.src) and all(outside[s] for s in node.src))
    hoisted.extend(o for o in outputs if o in outside and not outside[o])
    if hoisted:
        fresh = _Params(Body([index, *carry, *xs_params, *(p for p, _ in consts)], outputs))
        mapping = {h: fresh.like(h) for h in dict.fromkeys(hoisted)}
        outputs = substitute(outputs, mapping)
        consts += [(p, h) for h, p in mapping.items()]
    used = set(toposort(outputs))
    consts = [(p, v) for p, v in consts if p in used]
    for p, value in zip([*carry, *xs_params], [*init, *xs]):
        expected = p.shape if p in carry else (length,) + p.shape
        if value.shape != expected or value.dtype != p.dtype:
            raise ValueError(f"loop: a source of {value.dtype}{list(value.shape)} for a param "
                             f"of {p.dtype}{list(p.shape)}")
    body = Body([index, *carry, *xs_params, *(p for p, _ in consts)], outputs)
    arg = Scan(body, int(length), len(carry), len(xs_params), bool(reverse), 0)
    return siblings(UOp(LOOP, (*init, *xs, *(v for _, v in consts)), arg))


def merge_loops(outputs: Sequence[UOp]) -> list[UOp]:
    """The graph of `outputs` with each loop whose results another loop of the graph also
    computes replaced by that loop's (the derivative transforms add loops that repeat the
    primal one: the JVP's carries the values beside the tangents, the VJP's forward pass also
    stores the carries).

    Loop b covers loop a when they run as many iterations in the same direction, each param
    of a is a param of b in the same role fed by the same value, and b's body computes a's new
    carries (for the same carry params) and a's ys: then every result of a is one of b's.
    """
    loops: dict[UOp, None] = {}
    for node in toposort(outputs):
        if node.op is LOOP:
            loops.setdefault(siblings(node)[0], None)
    if len(loops) < 2:
        return list(outputs)
    mapping: dict[UOp, UOp] = {}
    for small in loops:
        best = None
        for big in loops:
            if big is not small and (best is None or len(big.arg.body.outputs) > len(
                    best[0].arg.body.outputs)):
                found = _covered(small, big)
                if found is not None:
                    best = (big, found)
        if best is not None:
            big_results = siblings(best[0])
            mapping.update((s, big_results[k]) for s, k in zip(siblings(small), best[1]))
    return substitute(outputs, mapping) if mapping else list(outputs)


def _fed(node: UOp) -> dict[UOp, tuple[str, UOp]]:
    """Each param of a loop's body (but the index): its role and the value feeding it."""
    arg: Scan = node.arg
    _, carry, xps, kps = arg.roles()
    init, xs, consts = arg.split(node.src)
    fed = {p: ("carry", v) for p, v in zip(carry, init)}
    fed.update((p, ("xs", v)) for p, v in zip(xps, xs))
    fed.update((p, ("const", v)) for p, v in zip(kps, consts))
    return fed


def _covered(small: UOp, big: UOp) -> list[int] | None:
    """Where each result of loop `small` is among the results of loop `big`, if it covers it."""
    a, b = small.arg, big.arg
    if (a.length, a.reverse) != (b.length, b.reverse) or a.body.params[0] is not \
            b.body.params[0]:
        return None
    fed_a, fed_b = _fed(small), _fed(big)
    if any(fed_b.get(p) != role for p, role in fed_a.items()) or set(siblings(small)) & set(
            toposort(big.src)):
        return None
    _, carry_b, _, _ = b.roles()
    carry_at = {p: j for j, p in enumerate(carry_b)}
    where = []
    for j, p in enumerate(a.roles()[1]):
        if b.body.outputs[carry_at[p]] is not a.body.outputs[j]:
            return None
        where.append(carry_at[p])
    ys_b = list(b.body.outputs[b.carries:])
    for y in a.body.outputs[a.carries:]:
        if not any(y is other for other in ys_b):
            return None
        where.append(b.carries + next(k for k, other in enumerate(ys_b) if other is y))
    return where


# ---- transforms -------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _jvp_loop(arg: Scan, src: tuple, tangents: tuple) -> tuple[list, list]:
    """The loop computing values and tangents, and where each result's tangent is (or None)."""
    from ...ad.forward import jvp_graph
    from .. import build as B
    index, carry, xps, kps = arg.roles()
    init, xs, consts = arg.split(src)
    t_init, t_xs, t_consts = arg.split(tangents)
    fresh = _Params(arg.body)
    floats = [j for j, p in enumerate(carry) if p.dtype.is_float]
    seeds = {carry[j]: fresh.like(carry[j]) for j in floats}
    moving = [j for j, t in enumerate(t_xs) if t is not None]
    seeds.update({xps[j]: fresh.like(xps[j]) for j in moving})
    varying = {j: fresh.like(kps[j]) for j, t in enumerate(t_consts) if t is not None}
    seeds.update({kps[j]: p for j, p in varying.items()})
    outs = list(arg.body.outputs)
    touts = jvp_graph(outs, seeds)
    dcarry = [B.materialise(touts[j], outs[j]) for j in floats]
    dys = [k for k in range(arg.carries, len(outs)) if touts[k] is not None]
    new = loop(index, [*carry, *(seeds[carry[j]] for j in floats)],
               [*xps, *(seeds[xps[j]] for j in moving)],
               list(zip(kps, consts)) + [(p, t_consts[j]) for j, p in varying.items()],
               outs[:arg.carries] + dcarry + outs[arg.carries:] + [touts[k] for k in dys],
               [*init, *(B.materialise(t_init[j], init[j]) for j in floats)],
               [*xs, *(t_xs[j] for j in moving)], arg.length, arg.reverse)
    where: list[int | None] = [None] * len(outs)
    for i, j in enumerate(floats):
        where[j] = arg.carries + i
    for i, k in enumerate(dys):
        where[k] = len(outs) + len(floats) + i
    return new, where


def _jvp(B, node: UOp, tangents: list) -> UOp | None:
    new, where = _jvp_loop(replace(node.arg, output=0), node.src, tuple(tangents))
    k = where[node.arg.output]
    return None if k is None else new[k]


RESIDUAL_RATIO = 4
"""The VJP of a loop stores, per iteration, the values its transposed body reads (residuals:
`cos(x)` for the derivative of `sin(x)`) when they are at most this many times the elements an
iteration starts from (its carries and scanned slices), instead of the carry alone: the
backward pass then recomputes nothing of the forward one (a loop of scalar RK4 steps: 12
transcendental calls a step -> 8). Larger residuals (array code with many intermediates) keep
the carry and recompute."""


def _vjp(B, node: UOp, cts: Sequence[UOp | None]) -> list[UOp | None]:
    """Cotangents of the sources given those of every result (`cts`, one per sibling): a
    forward loop storing what each iteration's VJP reads (`_residuals`), then a loop over the
    iterations in the other order transposing the body."""
    from ...ad.reverse import vjp_graph
    arg: Scan = node.arg
    index, carry, xps, kps = arg.roles()
    init, xs, consts = arg.split(node.src)
    outs = list(arg.body.outputs)
    c = arg.carries
    fresh = _Params(arg.body)
    floats = [j for j, p in enumerate(carry) if p.dtype.is_float]
    ct_carry = {j: fresh.like(carry[j]) for j in floats}
    ct_ys = {k: fresh.like(outs[k]) for k in range(c, len(outs))
             if cts[k] is not None and outs[k].dtype.is_float}
    body_cts = [ct_carry.get(j) for j in range(c)] + [ct_ys.get(k) for k in range(c, len(outs))]
    wrt_x = [j for j, p in enumerate(xps) if p.dtype.is_float]
    wrt_k = [j for j, p in enumerate(kps) if p.dtype.is_float]
    grads = vjp_graph(outs, body_cts, [carry[j] for j in floats] + [xps[j] for j in wrt_x]
                      + [kps[j] for j in wrt_k])
    saved = _residuals([g for g in grads if g is not None], {index, *carry, *xps},
                       {*ct_carry.values(), *ct_ys.values()})
    if sum(r.size for r in saved) > RESIDUAL_RATIO * sum(p.size for p in (*carry, *xps)):
        saved = []
    saved_params = {r: fresh.like(r) for r in saved}
    if saved_params:
        replaced = iter(substitute([g for g in grads if g is not None], saved_params))
        grads = [None if g is None else next(replaced) for g in grads]
    g_carry, g_x, g_k = (grads[:len(floats)], grads[len(floats):len(floats) + len(wrt_x)],
                         grads[len(floats) + len(wrt_x):])
    sums = [fresh.like(kps[j]) for j in wrt_k]
    new_carry = [B.materialise(g, carry[j]) for g, j in zip(g_carry, floats)]
    new_carry += [B.add(s, g) for s, g in zip(sums, g_k)]
    moving = [i for i, g in enumerate(g_x) if g is not None]
    body_outs = new_carry + [g_x[i] for i in moving]
    read = set(toposort(body_outs))
    stored_carry = [p for p in carry if p in read]
    # Forward, storing per iteration the residuals and the carries the VJP still reads.
    forward = loop(index, carry, xps, list(zip(kps, consts)), outs + saved + stored_carry,
                   init, xs, arg.length, arg.reverse)
    backward = loop(
        index, [ct_carry[j] for j in floats] + sums,
        [*saved_params.values(), *stored_carry, *xps, *ct_ys.values()], list(zip(kps, consts)),
        body_outs,
        [B.materialise(cts[j], init[j]) for j in floats] + [B.zeros_like(consts[j])
                                                           for j in wrt_k],
        forward[len(outs):] + list(xs) + [cts[k] for k in ct_ys], arg.length, not arg.reverse)
    result: list[UOp | None] = [None] * len(node.src)
    for i, j in enumerate(floats):
        result[j] = backward[i]
    for i, j in enumerate(wrt_k):
        result[c + arg.xs + j] = backward[len(floats) + i]
    ys_start = len(floats) + len(wrt_k)
    for i, m in enumerate(moving):
        result[c + wrt_x[m]] = backward[ys_start + i]
    return result


def _residuals(grads: list[UOp], varying: set[UOp], cotangents: set[UOp]) -> list[UOp]:
    """The values of an iteration its VJP graph `grads` reads: nodes computed from the
    iteration's own params (`varying`: index, carry, xs), not from `cotangents`, and read by
    nodes that are. A param, or a view of one, is not one (read again from the param)."""
    from_ct, from_varying = set(cotangents), set(varying)
    found: dict[UOp, None] = {}
    for node in toposort(grads):
        if node in from_ct or node in from_varying:
            continue
        if any(s in from_ct for s in node.src):
            from_ct.add(node)
            found.update((s, None) for s in node.src
                         if s in from_varying and not _view_of(s, varying))
        elif any(s in from_varying for s in node.src):
            from_varying.add(node)
    return list(found)


def _view_of(node: UOp, params: set[UOp]) -> bool:
    while node.op in VIEWS:
        node = node.src[0]
    return node in params


@functools.lru_cache(maxsize=64)
def _batch_loop(arg: Scan, sources: tuple, flags: tuple) -> tuple[list, list]:
    """The batched loop's results and whether each carries the batch (leading axis)."""
    from ...ad.batching import vmap_graph, with_batch
    from .. import build as B
    size = next(s.shape[0] for s, f in zip(sources, flags) if f)
    index, carry, xps, kps = arg.roles()
    init, xs, consts = arg.split(sources)
    f_init, f_xs, f_consts = arg.split(flags)
    fresh = _Params(arg.body)
    outs = list(arg.body.outputs)
    batched_carry = {j for j, f in enumerate(f_init) if f}
    mapping = {xps[j]: fresh.like(xps[j], (size,) + xps[j].shape) for j, f in enumerate(f_xs)
               if f}
    mapping.update({kps[j]: fresh.like(kps[j], (size,) + kps[j].shape)
                    for j, f in enumerate(f_consts) if f})
    while True:
        for j in batched_carry:
            if carry[j] not in mapping:
                mapping[carry[j]] = fresh.like(carry[j], (size,) + carry[j].shape)
        results = vmap_graph(outs, mapping)
        grown = {j for j in range(arg.carries) if results[j][1]} - batched_carry
        if not grown:
            break
        batched_carry |= grown
    new_outs = [with_batch(n, f, size) if j in batched_carry else n
                for j, (n, f) in enumerate(results[:arg.carries])]
    new_outs += [n for n, _ in results[arg.carries:]]
    x_sources = [B.permute(x, (1, 0) + tuple(range(2, x.ndim))) if f else x
                 for x, f in zip(xs, f_xs)]
    new = loop(index, [mapping.get(p, p) for p in carry], [mapping.get(p, p) for p in xps],
               [(mapping.get(p, p), v) for p, v in zip(kps, consts)], new_outs,
               [with_batch(v, f, size) if j in batched_carry else v
                for j, (v, f) in enumerate(zip(init, f_init))],
               x_sources, arg.length, arg.reverse)
    has = [j in batched_carry for j in range(arg.carries)]
    has += [f for _, f in results[arg.carries:]]
    return new, has


def _batch(B, node: UOp, sources: tuple, batched: tuple) -> UOp:
    from ...ad.batching import with_batch
    arg: Scan = node.arg
    new, has = _batch_loop(replace(arg, output=0), tuple(sources), tuple(batched))
    result, k = new[arg.output], arg.output
    size = next(s.shape[0] for s, f in zip(sources, batched) if f)
    if k >= arg.carries and has[k]:
        return B.permute(result, (1, 0) + tuple(range(2, result.ndim)))
    return with_batch(result, has[k], size)


@functools.lru_cache(maxsize=16)
def _trajectory(arg: Scan, src: tuple) -> tuple[list, list, int]:
    """The loop's first-order patterns over all its sources' elements (one after the other):
    per iteration, in the order they run, (index, the patterns of the body's params but the
    index); then every result's pattern; and the number of columns. The body's Jacobian
    pattern with respect to its params is composed iteration by iteration."""
    import scipy.sparse as sp

    from ...ad.sparsity import jacobian_pattern
    body = arg.body
    params = body.params[1:]
    local = sp.csr_array(jacobian_pattern(body.outputs, params))
    rows = np.cumsum([0] + [o.size for o in body.outputs])
    cols = np.cumsum([0] + [p.size for p in params])
    blocks = [[local[r0:r1, c0:c1] for c0, c1 in zip(cols, cols[1:])]
              for r0, r1 in zip(rows, rows[1:])]
    starts = np.cumsum([0] + [s.size for s in src])
    total = int(starts[-1])

    def columns(start: int, count: int):
        return sp.csr_array((np.ones(count, bool), (np.arange(count), start + np.arange(count))),
                            shape=(count, total))
    init, xs, consts = arg.split(list(range(len(src))))
    carry = [columns(starts[k], src[k].size) for k in init]
    fixed = [columns(starts[k], src[k].size) for k in consts]
    ys: list[list] = [[None] * arg.length for _ in body.outputs[arg.carries:]]
    steps = []
    for i in (reversed(range(arg.length)) if arg.reverse else range(arg.length)):
        slices = [columns(starts[k] + i * params[arg.carries + j].size,
                          params[arg.carries + j].size) for j, k in enumerate(xs)]
        inputs = carry + slices + fixed
        steps.append((i, inputs))
        out = [sp.csr_array(sum((b @ p for b, p in zip(row, inputs) if b.nnz),
                                sp.csr_array((o.size, total), dtype=bool)))
               for row, o in zip(blocks, body.outputs)]
        carry = out[:arg.carries]
        for y, value in zip(ys, out[arg.carries:]):
            y[i] = value
    stacked = [sp.csr_array(sp.vstack(y, format="csr")) if y else
               sp.csr_array((0, total), dtype=bool) for y in ys]
    return steps, carry + stacked, total


def _split_columns(pattern, src: tuple) -> list:
    starts = np.cumsum([0] + [s.size for s in src])
    return [pattern[:, a:b] for a, b in zip(starts, starts[1:])]


def _dependence(node: UOp) -> list:
    _, results, _ = _trajectory(replace(node.arg, output=0), node.src)
    return _split_columns(results[node.arg.output], node.src)


def _pairs(node: UOp, alive: np.ndarray) -> list:
    """The second-order structure of one result's `alive` elements: per iteration, the body's
    Hessian pattern with respect to its params (for the body elements the result depends on,
    found backwards over the iterations; computed once per distinct set of them) carried to
    the sources through the params' patterns at that iteration."""
    import scipy.sparse as sp

    from ...ad.sparsity import identity_seeds, second_order_terms, symmetric
    arg: Scan = node.arg
    steps, _, total = _trajectory(replace(arg, output=0), node.src)
    body = arg.body
    params, outs = body.params[1:], body.outputs
    floats = [k for k, p in enumerate(params) if p.dtype.is_float]
    seeds = identity_seeds([params[k] for k in floats])
    size = sum(params[k].size for k in floats)
    local: dict[bytes, tuple] = {}
    carry_live = [np.zeros(o.size, bool) for o in outs[:arg.carries]]
    if arg.output < arg.carries:
        carry_live[arg.output] = alive
    rows = None if arg.output < arg.carries else alive.reshape(arg.length, -1)
    hessian = sp.csr_array((total, total), dtype=bool)
    for i, inputs in reversed(steps):
        live: dict[UOp, np.ndarray] = {}
        wanted = list(zip(outs[:arg.carries], carry_live))
        if rows is not None:
            wanted.append((outs[arg.output], rows[i]))
        for out, elements in wanted:
            live[out] = elements | live[out] if out in live else elements
        key = b"".join(np.packbits(live.get(o, np.zeros(o.size, bool))).tobytes() + b"|"
                       for o in outs)
        if key not in local:
            terms, reached = second_order_terms(outs, seeds, live)
            local[key] = (symmetric(terms, size), reached)
        body_hessian, reached = local[key]
        if body_hessian.nnz:
            moved = sp.csr_array(sp.vstack([inputs[k] for k in floats], format="csr"))
            hessian = hessian + moved.T @ body_hessian @ moved
        carry_live = [reached.get(p, np.zeros(p.size, bool)) for p in params[:arg.carries]]
    starts = np.cumsum([0] + [s.size for s in node.src])
    spans = list(zip(starts, starts[1:]))
    hessian = sp.csr_array(hessian)
    return [(a, b, hessian[a0:a1, b0:b1]) for a, (a0, a1) in enumerate(spans)
            for b, (b0, b1) in enumerate(spans) if hessian[a0:a1, b0:b1].nnz]


LOOP = OpDef(
    "loop", None, kind=OpKind.LOOP,
    shape=_result,
    dtype=lambda dts, arg: arg.body.outputs[arg.output].dtype,
    numpy=_numpy,
    jvp=_jvp,
    vjp=_vjp,
    batch=_batch,
    siblings=siblings,
    dependence=_dependence,
    pairs=_pairs,
    linearity=Linearity.NONLINEAR,
    cost=1 << 20,
)
"""arg = Scan: one result of a loop (docs/architecture.md, 'Loops')."""

__all__ = ["LOOP", "PARAM", "Body", "Scan", "body_depth", "loop", "merge_loops", "param", "run",
           "siblings"]
