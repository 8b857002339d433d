"""UOp: the immutable, hash-consed graph node; OpDef: all the rules of one op; graph utilities."""
from __future__ import annotations

import enum
import hashlib
import math
import pickle
import weakref
from _weakref import _remove_dead_weakref
from dataclasses import dataclass
from typing import Any, Callable, Container, Hashable, Iterable, Protocol, Sequence

import numpy as np

from .dtypes import DType


class OpKind(enum.Enum):
    """What an op does to positions: the scheduler fuses elementwise and movement ops, gives
    reductions and contractions loops of their own, reads sources from buffers, and runs a
    loop's body (ir/ops/control.py) in a native loop of its own."""

    ELEMENTWISE = "elementwise"
    REDUCE = "reduce"
    MOVEMENT = "movement"
    CONTRACT = "contract"
    SOURCE = "source"
    LOOP = "loop"
    PROGRAM = "program"


class Linearity(enum.Enum):
    """How an op's value depends on its differentiable sources: the second-order structure that
    Hessian sparsity needs."""

    CONSTANT = "constant"     # no derivative: comparisons, logic, integer results
    LINEAR = "linear"         # a linear map of its sources: add, neg, where, movement, sum;
    #                           or piecewise linear (abs, max, min, mod): no second derivative
    BILINEAR = "bilinear"     # linear in each source alone: x * y, contractions
    QUOTIENT = "quotient"     # linear in the first source, nonlinear in the second: x / y
    NONLINEAR = "nonlinear"


_MEMOISED = frozenset({OpKind.ELEMENTWISE, OpKind.REDUCE, OpKind.MOVEMENT, OpKind.CONTRACT})


class ScalarEmitter(Protocol):
    """What op rules call to emit scalar LLVM IR (implemented by backend.emitter.Emitter)."""

    parts: Any

    def op(self, text: str) -> str: ...
    def call(self, ret: str, fname: str, args: list, pure: bool = False) -> str: ...
    def add_i(self, a: str, b: str) -> str: ...
    def mul_i(self, a: str, b: str) -> str: ...
    def less_i(self, a: str, n: int) -> str: ...
    def clamp_i(self, a: str, n: int) -> str: ...
    def in_range(self, a: str, n: int) -> str: ...
    def flatten(self, dims, shape) -> str: ...


class LoweringContext(Protocol):
    """What movement, source, reduction and program rules call while a kernel is emitted
    (implemented by backend.codegen.Lowering): values of nodes at indices, and the emitter."""

    e: ScalarEmitter

    def value(self, node: "UOp", index: Any) -> str: ...
    def index(self, shape: tuple, dims: tuple) -> Any: ...
    def cast_index(self, value: str, dtype: DType) -> str: ...
    def load_constant(self, payload: "Payload", flat: str) -> str: ...
    def guarded(self, condition: str, compute: Callable, default: str, ty: str) -> str: ...
    def choose(self, condition: str, then: Callable, otherwise: Callable, ty: str) -> str: ...
    # and program rules (OpKind.PROGRAM), which write their own loops over buffers
    def start(self, node: "UOp") -> str: ...
    def loop(self, count: int, hint: str) -> tuple[str, Callable[[], None]]: ...
    def range(self, start: str, stop: str, bound: int,
              hint: str) -> tuple[str, Callable[[], None]]: ...
    @property
    def lapack(self) -> bool: ...   # programs may call SciPy's LAPACK (code for this process)


@dataclass(frozen=True)
class Reduction:
    """How a reduction or contraction lowers: the loop over `reduced_shape(node)` folds the
    values `body(ctx, node, out_dims, reduced_dims)` with the binary elementwise op `combine`,
    starting from `identity(dtype)` (a Python scalar)."""

    identity: Callable
    combine: "OpDef"
    reduced_shape: Callable
    body: Callable


@dataclass(frozen=True, eq=False)
class OpDef:
    """Everything anvil_llvm knows about one op, kept in one place.

    `shape(shapes, arg)` and `dtype(dtypes, arg)` infer the result; `numpy(arg, *values)` is the
    reference semantics. Lowering, by kind: an elementwise op's `scalar(e, node, *values)`
    computes its value from its sources' values with a `ScalarEmitter`; a movement or source
    op's `emit(ctx, node, index)` gives its value at an index through a `LoweringContext`; a
    reduction or contraction has a `Reduction`.
    The transform rules receive the graph builder `B` (anvil_llvm.ir.build) first:
    `jvp(B, node, tangents) -> tangent`, `vjp(B, node, ct) -> cotangent per source` and
    `batch(B, node, sources, batched) -> node with a leading batch axis`; None is a zero.
    `linearity` is how the value depends on the sources (None: not declared).
    `last_axis(node) -> (edges, reads, kept)` says how a movement op reads along its last axis:
    at position p it reads each `(source, step, shift)` of `reads` at `step * p + shift`, its
    bounds tests change outcome at the positions `edges` (the backend splits loops there), and
    `kept` tells whether every other axis is read at the node's own position.
    Sparsity: `dependence(node) -> [pattern or None per source]` gives which source elements
    each element of the node reads, as boolean scipy.sparse arrays (node.size x source.size);
    elementwise ops read each source at their own position and need no rule. `pairs(node,
    live) -> [(i, j, M)]` gives the second-order structure of a non-elementwise op that is not
    linear: sources i and j interact where M (source i size x source j size) holds, counting
    only the node's `live` elements (those the output depends on).
    An op of kind PROGRAM runs as a kernel of its own that `program(ctx, node, out, scratch)`
    emits whole (a sequential program: `out` and `scratch` are pointers to its result and to
    workspace of `scratch(node)` elements of its dtype). An `in_place` program's scratch is a
    working copy of its first source: where that source's workspace dies in its kernel, it gets
    `scratch` None and works on the source itself.
    An op with several results makes one node per result: `siblings(node)` gives them all, in
    order, and its `vjp(B, node, cts)` receives the cotangents of all of them at once.
    `uniform`, for an elementwise op: its result dtype per dtype of sources that share one shape
    and one dtype (what its rules would give: nodes are then made without running them).
    `data_arg`: the arg holds arrays (a gather's indices, a placement's slots); other ops of the
    elementwise, reduce, movement and contract kinds have their rules' results remembered.
    """

    name: str
    arity: int | None
    shape: Callable[[tuple, Any], tuple]
    dtype: Callable[[tuple, Any], DType]
    numpy: Callable[..., np.ndarray]
    kind: OpKind = OpKind.ELEMENTWISE
    scalar: Callable[..., str] | None = None
    emit: Callable[["LoweringContext", "UOp", Any], str] | None = None
    reduction: Reduction | None = None
    cost: int = 1                   # rough scalar cost, guides recomputation vs realisation
    jvp: Callable | None = None
    vjp: Callable | None = None
    batch: Callable | None = None
    linearity: Linearity | None = None
    last_axis: Callable | None = None
    siblings: Callable[["UOp"], list] | None = None
    program: Callable | None = None
    scratch: Callable[["UOp"], int] | None = None
    in_place: bool = False
    dependence: Callable[["UOp"], list] | None = None
    pairs: Callable[["UOp", np.ndarray], list] | None = None
    uniform: dict | None = None
    data_arg: bool = False          # the arg holds arrays (index or slot tables)

    def __repr__(self) -> str:
        return self.name

    def __post_init__(self) -> None:
        _OPS.setdefault(self.name, self)
        # Shapes and dtypes are remembered for ops whose arg is small: a remembered arg of
        # arrays or graphs (tables, constants, a loop's body) would be kept alive.
        object.__setattr__(self, "memo", self.kind in _MEMOISED and not self.data_arg)

    def __reduce__(self):
        """Pickled by name: the rules are code, found again in the unpickling process."""
        if _OPS.get(self.name) is not self:
            raise pickle.PicklingError(f"op {self.name!r} is not the registered op of that name")
        return (op_named, (self.name,))


_OPS: dict[str, OpDef] = {}


def op_named(name: str) -> OpDef:
    """The op called `name` (how a pickled op is found again)."""
    from . import ops  # noqa: F401  the op set registers itself on import
    found = _OPS.get(name)
    if found is None:
        raise ValueError(f"unknown op {name!r}: a graph pickled by another version of "
                         "anvil_llvm?")
    return found


class _Fields:
    """A node's fields; `UOp.__new__` fills them on a `_Fresh` object (plain slot stores) and
    then makes it a UOp, whose `__setattr__` refuses every change."""

    __slots__ = ("op", "dtype", "shape", "src", "arg", "size", "__weakref__")


class _Fresh(_Fields):
    __slots__ = ()


class UOp(_Fields):
    """One node of the graph: op, dtype, shape, sources and a hashable argument.

    Nodes are interned: constructing an equal node returns the existing object, so `is`
    compares graphs and equal subexpressions are shared.
    """

    __slots__ = ()

    op: OpDef
    dtype: DType
    shape: tuple[int, ...]
    src: tuple["UOp", ...]
    arg: Hashable
    size: int

    def __new__(cls, op: OpDef, src: tuple = (), arg: Hashable = None) -> "UOp":
        if type(src) is not tuple:
            src = tuple(src)
        key = (op, arg, src)
        ref = _interned_get(key)
        if ref is not None:
            found = ref()
            if found is not None:
                return found
        if op.arity is not None and len(src) != op.arity:
            raise ValueError(f"op '{op.name}' takes {op.arity} sources, got {len(src)}")
        dtype = None
        if op.uniform is not None:
            first = src[0]
            shape, size = first.shape, first.size
            for s in src:
                if s.dtype is not first.dtype or s.shape != shape:
                    break
            else:
                dtype = op.uniform.get(first.dtype)
        if dtype is None:   # the rules (remembered: a traced loop asks the same each step)
            if len(src) == 1:
                shapes, types = (src[0].shape,), (src[0].dtype,)
            else:
                shapes, types = tuple([s.shape for s in src]), tuple([s.dtype for s in src])
            rule_key = (op, arg, shapes, types)
            known = _rules_get(rule_key) if op.memo else None
            if known is None:   # the result, or the error
                shape = tuple(map(int, op.shape(shapes, arg)))
                known = shape, op.dtype(types, arg), math.prod(shape)
                if op.memo:
                    if len(_rules) >= _MAX_RULES:
                        _rules.clear()
                    _rules[rule_key] = known
            shape, dtype, size = known
        node = object.__new__(_Fresh)
        node.shape = shape
        node.dtype = dtype
        node.op = op
        node.src = src
        node.arg = arg
        node.size = size
        node.__class__ = cls
        ref = _Interned(node, _forget)
        ref.key = key
        _interned[key] = ref
        return node

    def __setattr__(self, name, value):
        raise AttributeError("UOp is immutable")

    def __reduce__(self):
        # flat, not recursive: graphs may be deeper than pickle's recursion allows
        return (_graph_root, (graph_state([self]),))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"UOp({self.op.name}, {self.dtype}{list(self.shape)}, arg={_short(self.arg)})"



SMALL_SIZE = 8
"""Arrays of at most this many elements are scalar code: the backend emits them position by
position (docs/backend.md, 'Small arrays are scalar code'), and `simplify` does not split their
elementwise ops into the slices that are read."""
class _Interned(weakref.ref):
    """A weak reference to an interned node that knows the node's key."""

    __slots__ = ("key",)


def _forget(ref: _Interned) -> None:
    """Drop the entry of a node that was freed, unless a new node took its key: one C call,
    atomic under the GIL (as WeakValueDictionary removes its dead entries), and every node of
    a freed graph comes here."""
    _remove_dead_weakref(_interned, ref.key)


_interned: dict[tuple, _Interned] = {}
"""Every live node by its (op, arg, sources), held weakly: a graph nobody holds is freed (a
plain dict of small weak references costs half of a WeakValueDictionary per node)."""
_interned_get = _interned.get
_rules: dict[tuple, tuple] = {}
"""The shape, dtype and size the rules gave for (op, arg, source shapes, source dtypes): rules
are pure, and asking them cost more than making the node (a slice: 1.4 of 2.4 us)."""
_rules_get = _rules.get
_MAX_RULES = 1 << 14


def _short(arg) -> str:
    text = repr(arg)
    return text if len(text) < 60 else text[:57] + "..."


class Payload:
    """A constant array wrapped so that it hashes and compares by content (a UOp argument)."""

    __slots__ = ("array", "_hash", "_digest")

    def __init__(self, array: np.ndarray):
        array = np.require(array, requirements="C")       # 0-d stays 0-d
        array.setflags(write=False)
        self.array = array
        self._hash = hash((array.dtype.str, array.shape, array.tobytes()))
        self._digest = None

    @property
    def digest(self) -> str:
        """A digest of the content, the same in every process (`hash` is salted per process)."""
        if self._digest is None:
            h = hashlib.sha256(f"{self.array.dtype.str}{self.array.shape}".encode())
            h.update(self.array.tobytes())
            self._digest = h.hexdigest()
        return self._digest

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        return (isinstance(other, Payload) and self._hash == other._hash
                and self.array.dtype == other.array.dtype
                and self.array.shape == other.array.shape
                and np.array_equal(self.array, other.array))

    def __repr__(self) -> str:
        return f"Payload({self.array.dtype}{list(self.array.shape)})"


def toposort(roots: Iterable[UOp], done: Container = ()) -> list[UOp]:
    """All nodes reachable from `roots` without passing through `done`, each after its sources
    (iterative: graphs may be deep)."""
    order: list[UOp] = []
    visited: set[UOp] = set()
    for root in roots:
        if root in visited or root in done:
            continue
        visited.add(root)
        stack = [(root, iter(root.src))]
        while stack:
            node, sources = stack[-1]
            for s in sources:
                if s not in visited and s not in done:
                    visited.add(s)
                    stack.append((s, iter(s.src)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def graph_state(roots: Sequence[UOp]) -> tuple[list[tuple], list[int]]:
    """The graph of `roots` as a flat list of `(op, source positions, arg)` in topological
    order, and the roots' positions: what pickles a graph of any depth."""
    order = toposort(roots)
    position = {node: i for i, node in enumerate(order)}
    return ([(n.op, tuple(position[s] for s in n.src), n.arg) for n in order],
            [position[r] for r in roots])


def graph_from_state(state: tuple[list[tuple], list[int]]) -> list[UOp]:
    """The roots of a graph from `graph_state`."""
    nodes, roots = state
    built: list[UOp] = []
    for op, sources, arg in nodes:
        built.append(UOp(op, tuple(built[i] for i in sources), arg))
    return [built[i] for i in roots]


def _graph_root(state) -> UOp:
    return graph_from_state(state)[0]


def consumers(order: list[UOp]) -> dict[UOp, list[UOp]]:
    """For each node of a topological order, the nodes that use it (once per use)."""
    users: dict[UOp, list[UOp]] = {node: [] for node in order}
    for node in order:
        for s in node.src:
            users[s].append(node)
    return users


def substitute(roots: Iterable[UOp], mapping: dict[UOp, UOp]) -> list[UOp]:
    """Rebuild the graph of `roots` with the nodes of `mapping` replaced."""
    memo = dict(mapping)
    for node in toposort(roots, mapping):
        if node in memo:
            continue
        src = tuple(memo[s] for s in node.src)
        memo[node] = node if all(a is b for a, b in zip(src, node.src)) else UOp(
            node.op, src, node.arg)
    return [memo[r] for r in roots]


def graph_text(outputs: Iterable[UOp], input_names: dict[UOp, str] | None = None) -> str:
    """The readable text form: one line per node, `%7 = mul %3 %6 : float64[5]`."""
    names: dict[UOp, str] = {}
    lines = []
    outputs = list(outputs)
    for i, node in enumerate(toposort(outputs)):
        names[node] = f"%{i}"
        operands = " ".join(names[s] for s in node.src)
        arg = ""
        if node.arg is not None:
            label = (input_names or {}).get(node)
            arg = f" {label}" if label else f" [{_short(node.arg)}]"
        lines.append(f"{names[node]} = {node.op.name}{(' ' + operands) if operands else ''}{arg}"
                     f" : {node.dtype}{list(node.shape)}")
    lines.append("return " + ", ".join(names[o] for o in outputs))
    return "\n".join(lines)


def graph_digest(outputs: Iterable[UOp], order: list[UOp] | None = None) -> str | None:
    """A digest of the graph of `outputs` (ops, arguments, shapes, dtypes, structure), the same
    in every process: a key for compiled code that needs no lowering to compute. None when an
    argument has no stable spelling. `order` is `toposort(outputs)` if the caller has it.

    >>> from anvil_llvm.ir import build as B, dtypes
    >>> from anvil_llvm.ir.ops import INPUT
    >>> x = UOp(INPUT, (), (0, (3,), dtypes.float64))
    >>> graph_digest([B.add(x, x)]) == graph_digest([B.add(x, x)]) != graph_digest([x])
    True
    """
    outputs = list(outputs)
    numbers: dict[UOp, int] = {}
    h = hashlib.sha256()
    try:
        for i, node in enumerate(toposort(outputs) if order is None else order):
            numbers[node] = i
            sources = ",".join(str(numbers[s]) for s in node.src)
            h.update(f"{node.op.name}({sources}){_stable(node.arg)}:{node.dtype}"
                     f"{node.shape}\n".encode())
    except TypeError:
        return None
    h.update(",".join(str(numbers[o]) for o in outputs).encode())
    return h.hexdigest()


def payloads(order: Iterable[UOp]) -> list[Payload]:
    """Every constant array the nodes of `order` hold in their arguments (array constants,
    gather tables), also inside the graphs their arguments hold (loop bodies: an argument's
    `inner_outputs`), each once."""
    found: dict[Payload, None] = {}
    seen: set[UOp] = set()
    pending = [list(order)]
    while pending:
        for node in pending.pop():
            if node in seen:
                continue
            seen.add(node)
            args = [node.arg]
            while args:
                arg = args.pop()
                if isinstance(arg, Payload):
                    found[arg] = None
                elif isinstance(arg, tuple):
                    args.extend(arg)
                else:
                    if getattr(arg, "inner_outputs", None) is not None:
                        pending.append(toposort(arg.inner_outputs))
                    key = getattr(arg, "stable_key", None)
                    if isinstance(key, tuple):
                        args.extend(key)
    return list(found)


def _stable(arg) -> str:
    """A spelling of an op argument that is the same in every process (TypeError if none)."""
    if arg is None or isinstance(arg, (bool, int, str, np.integer, np.bool_)):
        return repr(arg)
    if isinstance(arg, (float, np.floating)):
        return float(arg).hex()
    if isinstance(arg, (tuple, list)):
        return "(" + ",".join(_stable(a) for a in arg) + ")"
    if isinstance(arg, DType):
        return arg.name
    if isinstance(arg, Payload):
        return arg.digest
    key = getattr(arg, "stable_key", None)      # scalar constants
    if key is None:
        raise TypeError(f"no stable spelling for {type(arg).__name__}")
    return _stable(key)
