"""Rerolling: a Python loop found again in its traced graph and turned back into a loop.

Tracing a Python `for` loop over a step function records the step's nodes once per iteration.
This pass finds such a repetition in the graph of a traced function and replaces it by one LOOP
whose body is one copy of the step, as if the user had written `av.scan`: the graph, the code
and the build time then stop growing with the trip count, and the derivatives are loops too.

The graph's non-leaf nodes in topological order form a sequence in which a traced loop is a
run of blocks of P nodes, each block the same ops as the one before, reading

- the nodes of its own block (the body's internal values),
- the nodes of the block before it (the carry; the first block reads the loop's initial carry),
- the same node outside the run in every block (a value the body closes over), or
- a leaf (a constant, an input) at the same place in every block: when it differs between
  blocks, the leaves are stacked into an array the loop scans (a time `t = i * h` computed in
  Python becomes the scanned array of the times).

A node is matched with the node P places later when both have the same op, argument, dtype and
shape and read their sources at the same distances (or the same far node, or leaves of one
kind); a run of matches longer than P is a loop. The rolled loop computes the same operations
in the same order: the reference interpreter gives the unrolled graph's values to the last bit.
Compiled, a loop body is optimised as a loop (a small array op may then call a vector maths
function where straight-line code calls the scalar one), which may change the last bit.
"""
from __future__ import annotations

import itertools
import operator
from typing import Sequence

import numpy as np

from . import build, dtypes
from .interpret import evaluate
from .ops import CONCAT, CONST, CONST_ARRAY, IOTA, LOOP, STACK, VIEWS, control
from .ops.source import const_array
from .uop import SMALL_SIZE, UOp, substitute, toposort

MIN_NODES = 200
"""Fewer repeated nodes than this stay unrolled (straight-line code is best there)."""
MIN_ARRAY_NODES = 20_000
"""A repetition over arrays larger than SMALL_SIZE stays unrolled below this many nodes: each
node is then a loop over the array, and the unrolled steps fuse into one pass over memory (a
batched integrator's steps), which a loop of steps cannot (it stores the carry each step)."""
MIN_BLOCKS = 4
"""A repetition of fewer blocks than this stays unrolled."""
MAX_LOOPS = 16
"""The most loops found in one graph (each pass finds the largest repetition left)."""
_CANDIDATES = 12          # periods tried per pass: those at which most nodes repeat
_CLIP = 64                # distances beyond this look alike when periods are guessed
_NEAR, _TRIED = 0.9, 3     # repetitions removing 90% of the most removed: up to three tried
_MAX_SOURCES = 8          # a node reading more is never part of a repetition
_CONSTANTS = (CONST, CONST_ARRAY, IOTA)
_SOURCES = operator.attrgetter("src")
_SIGNATURE = operator.attrgetter("op", "arg", "dtype", "shape")
_MAX_SCANNED = 1 << 22    # elements of a constant stacked from leaves that differ per block


def _kind(leaf: UOp, root: UOp) -> tuple:
    """What must agree for two leaves (or views of leaves) to take each other's place in two
    blocks: shape, dtype, and the input they view (constants may differ)."""
    return (leaf.dtype, leaf.shape, root.op if root.op in _CONSTANTS else root)


def reroll(outputs: Sequence[UOp]) -> list[UOp]:
    """The graph of `outputs` with its repeated blocks made loops (top-level graphs only: the
    loops' bodies are at depth 0).

    >>> from anvil_llvm.ir.ops import INPUT, SIN, MUL
    >>> x = y = UOp(INPUT, (), (0, (2,), dtypes.float64))
    >>> for _ in range(300):
    ...     y = UOp(MUL, (UOp(SIN, (y,)), x))
    >>> rolled = toposort(reroll([y]))
    >>> len(rolled), sum(n.op.name == "loop" for n in rolled)
    (4, 1)
    """
    outputs = list(outputs)
    for _ in range(MAX_LOOPS):
        rolled = _roll_largest(outputs)
        if rolled is None:
            return outputs
        outputs = rolled
    return outputs


class _Sequence:
    """The non-leaf nodes of a graph in topological order, as arrays: per node a signature id;
    per source slot the source's position (-1 for a leaf), its leaf kind and leaf id."""

    def __init__(self, outputs: list[UOp]):
        self.outputs = outputs
        # leaves, and views of leaves (a slice of an input, a broadcast constant), are read by
        # a loop's body from outside: their root leaf
        roots: dict[UOp, UOp] = {}
        self.nodes = nodes = []
        for node in toposort(outputs):
            if not node.src:
                roots[node] = node
            elif node.op in VIEWS and node.src[0] in roots:
                roots[node] = roots[node.src[0]]
            else:
                nodes.append(node)
        self.roots = roots
        self.position = position = dict(zip(nodes, itertools.count()))
        n = len(nodes)
        # (vectorised: this runs over every node of graphs of millions; the per-slot arrays
        # are column-major, in the narrowest integer type that holds 2n: `runs` compares
        # them column by column)
        self.itype = itype = np.int32 if 2 * n + 2 < 2 ** 31 else np.int64
        lengths = np.fromiter(map(len, map(_SOURCES, nodes)), itype, n)
        width = int(min(lengths.max(initial=0), _MAX_SOURCES))
        signatures: dict = {}
        self.sig = np.fromiter(map(signatures.setdefault, map(_SIGNATURE, nodes),
                                   itertools.count()), itype, n)
        apart = lengths > width                # never part of a repetition: wide nodes, loops
        loops = [i for key, i in signatures.items() if key[0] is LOOP]
        if loops:
            apart |= np.isin(self.sig, loops)
        self.sig[apart] = -1 - np.flatnonzero(apart)
        # sources: positions (-1 for leaves) into rows of `width` slots
        kept = [nodes[i] for i in np.flatnonzero(~apart).tolist()] if apart.any() else nodes
        reads = list(itertools.chain.from_iterable(map(_SOURCES, kept)))
        flat = np.fromiter(map(position.get, reads, itertools.repeat(-1)), itype, len(reads))
        counts = np.where(apart, 0, lengths)
        row = np.repeat(np.arange(n, dtype=itype), counts)
        slot = np.arange(len(reads), dtype=itype) - np.repeat(np.cumsum(counts) - counts,
                                                              counts).astype(itype)
        self.src = np.full((n, width), -1, itype, order="F")
        self.src[row, slot] = flat
        # leaves: an id each, and a kind (what another leaf must share to take its place)
        self.kind = np.zeros((n, width), itype, order="F")      # 0: padding or not a leaf
        self.leaf = np.full((n, width), -1, itype, order="F")
        at = np.flatnonzero(flat < 0)
        row, slot = row[at], slot[at]
        ids: dict[UOp, int] = {}
        self.leaf[row, slot] = np.fromiter(
            map(ids.setdefault, [reads[j] for j in at.tolist()], itertools.count()),
            itype, len(at))
        self.leaves = {i: leaf for leaf, i in ids.items()}
        kinds: dict = {}
        kind_of = np.zeros(len(ids) and max(ids.values()) + 1, itype)
        for leaf, i in ids.items():
            kind_of[i] = 1 + kinds.setdefault(_kind(leaf, roots[leaf]), len(kinds))
        self.kind[row, slot] = kind_of[self.leaf[row, slot]]
        self._slots: dict[int, tuple] = {}

    def _column(self, k: int, period: int | None) -> np.ndarray:
        """Per node, what a repeat must match in source slot `k`: a leaf's kind (negated), the
        distance to a near source (within two periods), or a far source's position (beyond
        every distance). Without a period, distances beyond _CLIP all look alike."""
        distance, reach, far = self._slot(k)
        if period is None:
            return np.where(self.src[:, k] >= 0, np.minimum(distance, _CLIP), -self.kind[:, k])
        return np.where(reach < 2 * period, distance, far)

    def _slot(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Source slot `k`'s distances (how many places before the node its source is), the
        same beyond every period where it reads a leaf, and what a repeat must match when the
        source is not near (the leaf's kind negated, or the source's position beyond every
        distance); computed once, `runs` asks for every candidate period."""
        found = self._slots.get(k)
        if found is None:
            src, n = self.src[:, k], len(self.nodes)
            reads_node = src >= 0
            distance = np.arange(n, dtype=self.itype) - src
            found = self._slots[k] = (distance, np.where(reads_node, distance, 2 * n + 1),
                                      np.where(reads_node, 2 * n + src, -self.kind[:, k]))
        return found

    def periods(self) -> list[int]:
        """Candidate block lengths: the distances P at which most nodes equal the node P
        places before (in signature and in how they read their sources)."""
        width = self.src.shape[1]
        mix = np.random.default_rng(0).integers(1, 2 ** 63, 1 + width, dtype=np.uint64)
        mix |= np.uint64(1)
        key = self.sig.astype(np.uint64) * mix[0]
        for k in range(width):
            key += self._column(k, None).astype(np.uint64) * mix[1 + k]
        # each distinct node a random point on the unit circle: the autocorrelation at lag P
        # counts the nodes equal to the node P places before, plus noise of order sqrt(n)
        # (every lag at once, by FFT; the candidates' runs are then checked exactly)
        n, lags = len(key), len(key) // (MIN_BLOCKS - 1) + 1
        z = np.exp((key >> np.uint64(11)).astype(np.float64) * (2j * np.pi / 2 ** 53))
        # zero-padded to n + lags points: the lags wanted do not wrap around
        spectrum = np.fft.fft(z, _smooth(n + lags))
        counts = np.fft.ifft(spectrum * spectrum.conj())[:lags].real
        counts[0] = 0
        best = np.argsort(-counts, kind="stable")[:_CANDIDATES]
        return [int(p) for p in best if counts[p] >= MIN_NODES]

    def runs(self, period: int) -> list[tuple[int, int]]:
        """Each repetition at `period` as (start, blocks), the largest first."""
        match = self.sig[:-period] == self.sig[period:]
        for k in range(self.src.shape[1]):
            column = self._column(k, period)
            match &= column[:-period] == column[period:]
        edges = np.diff(np.concatenate([[0], match.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        blocks = (ends - starts) // period + 1
        best = np.argsort(-blocks, kind="stable")
        return [(int(starts[b]), int(blocks[b])) for b in best if blocks[b] >= MIN_BLOCKS]


def _smooth(size: int) -> int:
    """The least number of the form 2^a 3^b 5^c that is at least `size` (NumPy's FFT of such a
    length is fast: 3.4 times faster than the next power of two at 410,000 points).

    >>> _smooth(7), _smooth(1000), _smooth(1025)
    (8, 1000, 1080)
    """
    best = 1 << max(size - 1, 0).bit_length()
    five = 1
    while five < best:
        three = five
        while three < best:
            power = three
            while power < size:
                power *= 2
            best = min(best, power)
            three *= 3
        five *= 5
    return best


def _roll_largest(outputs: list[UOp]) -> list[UOp] | None:
    seq = _Sequence(outputs)
    if len(seq.nodes) < MIN_NODES:
        return None
    found = []
    for period in seq.periods():
        for start, blocks in seq.runs(period):
            if (blocks - 1) * period >= MIN_NODES:
                found.append(((blocks - 1) * period, start, blocks, period))
    # Repetitions that remove nearly as many nodes are rolled each (a step of three alike
    # substeps is a loop of steps or one of substeps): the smallest resulting graph is kept.
    rolled, most = [], max((f[0] for f in found), default=0)
    for removed, start, blocks, period in sorted(found, key=lambda f: -f[0]):
        if rolled and (removed < _NEAR * most or len(rolled) == _TRIED):
            break
        start, blocks = _best_phase(seq, start, blocks, period)
        if blocks >= MIN_BLOCKS and (blocks - 1) * period >= _least_nodes(seq, start, period):
            result = _Region(seq, start, period, blocks).roll()
            if result is not None:
                rolled.append(result)
    return min(rolled, key=lambda r: len(toposort(r))) if rolled else None


def _least_nodes(seq: _Sequence, start: int, period: int) -> int:
    """The fewest repeated nodes worth a loop: MIN_NODES for scalar code, MIN_ARRAY_NODES
    when the blocks compute arrays."""
    small = all(node.size <= SMALL_SIZE for node in seq.nodes[start:start + period])
    return MIN_NODES if small else MIN_ARRAY_NODES


def _best_phase(seq: _Sequence, start: int, blocks: int, period: int) -> tuple[int, int]:
    """Where the blocks should begin so that the fewest values cross from a block to the
    next (the loop's carries), and how many whole blocks then fit in the repetition."""
    if period > 2048:
        return start, blocks
    first = start + period                     # a block whose predecessor is in the run
    users = seq.src[first:first + period]
    where = np.nonzero(users >= start)
    reader = first + where[0]
    read = users[where]
    # a value is carried when a block boundary lies between it and its last reader: the
    # boundaries at phase p lie at p, p + period, ... (from `first`); each value counts for
    # the phases of its span (value, last reader], all of them for a span of a period or more
    if not read.size:
        return start, blocks
    backwards = read[::-1]
    values, at = np.unique(backwards, return_index=True)
    values = values - first
    readers = reader[::-1][at] - first          # readers ascend: the last one of each value
    short = readers - values < period
    low, high = (values[short] + 1) % period, readers[short] % period
    wraps = low > high
    change = np.bincount(low, minlength=period + 1) - np.bincount(high + 1,
                                                                 minlength=period + 1)
    change[0] += wraps.sum()                    # a span across a block's end: two pieces
    change[period] -= wraps.sum()
    carried = np.cumsum(change)[:period] + int((~short).sum())
    shift = int(np.argmin(carried))              # blocks start at first + shift
    return start + shift, ((blocks - 1) * period - shift) // period + 1


class _Region:
    """`blocks` blocks of `period` nodes from `start`: the loop they become."""

    def __init__(self, seq: _Sequence, start: int, period: int, blocks: int):
        self.seq, self.start, self.period, self.blocks = seq, start, period, blocks
        self.model = start + period        # the block the body is built from

    def roll(self) -> list[UOp] | None:
        seq, start, period, blocks = self.seq, self.start, self.period, self.blocks
        read, scanned = self._reads()
        if read is None:
            return None
        finals, stacked = self._read_after()
        carried = sorted(read | {r for r in finals if r not in stacked})
        nodes = seq.nodes
        init = []
        for r in carried:
            inner = nodes[start + r]
            if start + r - period >= 0 and r in read:
                value = nodes[start + r - period]
                if value.shape != inner.shape or value.dtype != inner.dtype:
                    return None
            else:                                   # only its final value is read
                value = build.full(inner.shape, 0, inner.dtype)
            init.append(value)
        index = control.param(0, 0, (), dtypes.int64)
        carry_params = {r: control.param(0, 1 + c, nodes[start + r].shape,
                                         nodes[start + r].dtype)
                        for c, r in enumerate(carried)}
        xs_params, scans = {}, {}           # a slot's param; a stacked array's param
        for slot in scanned:
            values = self._leaves(*slot)
            array = _stacked(values, seq.roots)
            if array is None:
                return None
            if array not in scans:
                scans[array] = control.param(0, 1 + len(carried) + len(scans),
                                             values[0].shape, values[0].dtype)
            xs_params[slot] = scans[array]
        xs = list(scans)
        body = self._body(carry_params, xs_params)
        ys = sorted(stacked)
        results = control.loop(index, list(carry_params.values()), list(scans.values()),
                               [], [body[self.model + r] for r in carried]
                               + [body[self.model + r] for r in ys], init, xs, blocks)
        mapping = {}
        last = start + (blocks - 1) * period
        for c, r in enumerate(carried):
            if r in finals:
                mapping[nodes[last + r]] = results[c]
        for y, r in enumerate(ys):
            result = results[len(carried) + y]
            for j in stacked[r]:
                mapping[nodes[start + j * period + r]] = build.reshape(build.slice_(
                    result, ((j, 1, 1),) + tuple((0, 1, d) for d in result.shape[1:])),
                    result.shape[1:])
        stacks = {r: results[len(carried) + y] for y, r in enumerate(ys)}
        joins = {node: runs for node in seq.nodes[start + blocks * period:]
                 if node.op is CONCAT and node.arg == 0 or node.op is STACK
                 for runs in [self._runs(node, stacks)] if len(runs) < len(node.src)}
        # the other pieces of those concatenations, rebuilt over the loop's results first
        others = [run[0] for runs in joins.values() for run in runs if len(run) == 1]
        rebuilt = dict(zip(others, substitute(others, mapping)))
        for node, runs in joins.items():
            mapping[node] = self._joined(runs, stacks, rebuilt, node.op is STACK)
        return substitute(seq.outputs, mapping)

    def _runs(self, node: UOp, stacks: dict[int, UOp]) -> list[list]:
        """The sources of a concatenation as runs [offset, first block, count] of values of
        consecutive blocks that the loop stacks, and [node] for any other source."""
        seq, start, period = self.seq, self.start, self.period
        end = start + self.blocks * period
        runs: list[list] = []
        for s in node.src:
            p = seq.position.get(s, -1)
            if start <= p < end and (p - start) % period in stacks:
                j, r = divmod(p - start, period)
                if runs and len(runs[-1]) == 3 and runs[-1][0] == r and \
                        runs[-1][1] + runs[-1][2] == j:
                    runs[-1][2] += 1
                    continue
                runs.append([r, j, 1])
            else:
                runs.append([s])
        return runs

    @staticmethod
    def _joined(runs: list[list], stacks: dict[int, UOp], rebuilt: dict[UOp, UOp],
                new_axis: bool) -> UOp:
        """A concatenation along axis 0 (a stack: `new_axis`) with each run of values of
        consecutive blocks as one slice of their stack (a trajectory collected in a list and
        concatenated or stacked)."""
        pieces = []
        for run in runs:
            if len(run) == 1:
                value = rebuilt[run[0]]
                pieces.append(build.reshape(value, (1,) + value.shape) if new_axis else value)
                continue
            r, j, count = run
            stack = stacks[r]
            part = build.slice_(stack, ((j, 1, count),) + build.whole(stack.shape[1:]))
            pieces.append(part if new_axis else build.reshape(
                part, (count * stack.shape[1],) + stack.shape[2:]))
        return build.concat(pieces, 0)

    def _reads(self):
        """What the model block reads: the block offsets of the values carried from the block
        before, and the leaf slots (offset, source) that differ between blocks; None for a
        block that reads two blocks back (not a loop with one carry)."""
        seq, start, period = self.seq, self.start, self.period
        carried = set()
        scanned = []
        rows = start + period * np.arange(self.blocks)
        for i in range(self.model, self.model + period):
            for k in range(len(seq.nodes[i].src)):
                t = seq.src[i, k]
                if t >= self.model:
                    continue
                if t >= start:
                    carried.add(int(t - start))
                elif t >= 0 and i - t < 2 * period:
                    return None, None
                elif t < 0:
                    r = i - self.model
                    if (seq.leaf[rows + r, k] != seq.leaf[i, k]).any():
                        scanned.append((r, k))
        return carried, scanned

    def _read_after(self) -> tuple[set[int], dict[int, list[int]]]:
        """The block offsets whose last value is read after the run, and those read in other
        blocks too (the loop stacks them): offset -> the blocks read."""
        seq, start, period = self.seq, self.start, self.period
        end = start + self.blocks * period
        read: dict[int, set[int]] = {}
        outside = [s for node in seq.nodes[end:] for s in node.src] + seq.outputs
        for s in outside:
            p = seq.position.get(s)
            if p is not None and start <= p < end:
                j, r = divmod(p - start, period)
                read.setdefault(r, set()).add(j)
        last = self.blocks - 1
        finals = {r for r, js in read.items() if last in js}
        stacked = {r: sorted(js) for r, js in read.items() if js != {last}}
        return finals, stacked

    def _leaves(self, r: int, k: int) -> list[UOp]:
        rows = self.start + self.period * np.arange(self.blocks) + r
        return [self.seq.leaves[lid] for lid in self.seq.leaf[rows, k].tolist()]

    def _body(self, carry_params: dict, xs_params: dict) -> dict[int, UOp]:
        """The model block rebuilt over the loop's params: position -> node."""
        seq, start, model = self.seq, self.start, self.model
        body: dict[int, UOp] = {}
        for i in range(model, model + self.period):
            node = seq.nodes[i]
            src = []
            for k, s in enumerate(node.src):
                t = int(seq.src[i, k])
                if t >= model:
                    src.append(body[t])
                elif t >= start:
                    src.append(carry_params[t - start])
                else:
                    src.append(xs_params.get((i - model, k), s))
            body[i] = UOp(node.op, tuple(src), node.arg)
        return body


def _stacked(leaves: list[UOp], roots: dict[UOp, UOp]) -> UOp | None:
    """The leaves stacked along a new leading axis: a constant array when all are constants,
    a gather from the input they view; None when that constant would be too large."""
    if all(leaf.op is CONST for leaf in leaves):
        return const_array(np.array([leaf.arg.value for leaf in leaves], leaves[0].dtype.np))
    root = roots[leaves[0]]
    if root.op in _CONSTANTS:
        if len(leaves) * leaves[0].size > _MAX_SCANNED:
            return None
        return const_array(np.stack(evaluate(leaves, [])))
    flat = np.arange(root.size).reshape(root.shape)
    table = np.stack(evaluate(leaves, [], {root: flat}))
    return build.gather(build.reshape(root, (root.size,)), 0, table)
