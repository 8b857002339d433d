"""NumericalFunction and @numerical_function: tracing a Python function into a UOp graph
and compiling it on first call."""
from __future__ import annotations

import functools
import inspect
import os
import threading
from typing import Callable, Sequence

import numpy as np

from . import progress
from .backend import cache, callpath, jit
from .backend.lower import Lowered, lower
from .backend.target import Target
from .ir.ops import INPUT
from .ir.reroll import reroll as rolled
from .ir.signature import Arg, as_arg, check_name
from .ir.simplify import simplify
from .ir.uop import (
    UOp,
    graph_digest,
    graph_from_state,
    graph_state,
    graph_text,
    payloads,
    substitute,
    toposort,
)
from .tensor import Tensor, as_tensor


def _origin(fn: Callable) -> str | None:
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    return f"{module}:{qualname}" if module and qualname else None


def _parameter_names(fn: Callable, count: int) -> list[str]:
    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"arg{i}" for i in range(count)]


class NumericalFunction:
    """A traced numerical function: callable on NumPy arrays, differentiable and exportable.

    `fn` is called once with a `Tensor` per argument; it returns a tensor or a tuple of tensors.
    The graph is compiled to native code on the first call (or by `compile()`).

    A Python loop in `fn` is traced once per iteration; when its iterations repeat the same
    operations, the graph holds them as one loop again (`reroll`, on by default: the build then
    takes the time of one iteration; `reroll=False` keeps every iteration as straight-line code).

    >>> import numpy as np, anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: av.Tensor.stack(x[0] * x[1], x[1] ** 2),
    ...                          (av.Arg(2),))
    >>> f(np.array([3.0, 4.0]))
    array([12., 16.])
    """

    def __init__(self, name: str, fn: Callable, args: Sequence, *, reroll: bool = True,
                 _graph=None):
        self.name = check_name(name)
        if isinstance(args, (Arg, int)):
            args = (args,)
        if not isinstance(args, (tuple, list)):
            raise TypeError(f"args: expected a tuple of Args (or shapes), one per argument, got "
                            f"{type(args).__name__}")
        if len(args) > 1 and all(isinstance(a, (int, np.integer)) for a in args):
            raise TypeError(f"args: {tuple(args)!r} is ambiguous: write (av.Arg({tuple(args)!r}),)"
                            " for one argument of that shape, or "
                            f"({', '.join(f'av.Arg({a})' for a in args)}) for {len(args)} "
                            "vector arguments")
        self.args = tuple(as_arg(a, i) for i, a in enumerate(args))
        names = _parameter_names(fn, len(self.args)) if callable(fn) else []
        self.arg_names = [a.name or n for a, n in zip(self.args, names)] or [
            a.name or f"arg{i}" for i, a in enumerate(self.args)]
        repeated = sorted({n for n in self.arg_names if self.arg_names.count(n) > 1})
        if repeated:
            raise ValueError(f"args: argument names must differ, {', '.join(repeated)} "
                             "given twice")
        self.inputs = [UOp(INPUT, (), (i, a.shape, a.dtype)) for i, a in enumerate(self.args)]
        # where the Python definition is (`module:qualname`; derived functions keep their
        # source's): exported headers name it
        self.origin = _origin(fn) if callable(fn) else None
        if _graph is not None:
            outputs, self.multiple = _graph
        elif not callable(fn):
            raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
        if not isinstance(reroll, (bool, np.bool_)):
            raise TypeError(f"reroll: expected a bool, got {type(reroll).__name__}")
        with progress.stage("trace" if _graph is None else "simplify", self.name):
            if _graph is None:
                outputs, self.multiple = self._trace(fn)
                if reroll:
                    outputs = rolled(outputs)
            self.outputs: list[UOp] = simplify(outputs)
        self._native = None
        self._lowered: dict[Target, Lowered] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_graph(cls, name: str, args: Sequence[Arg], outputs: Sequence[UOp],
                   multiple: bool, arg_names: Sequence[str] | None = None) -> "NumericalFunction":
        """A function whose graph is given (the transforms build their results this way): its
        inputs are the INPUT nodes of `args`' positions, shapes and dtypes."""
        cls = getattr(cls, "_uncompiled", cls)     # not the class of a compiled function
        fn = cls(name, None, args, _graph=(list(outputs), multiple))
        if arg_names is not None:
            fn.arg_names = list(arg_names)
        return fn

    def _trace(self, fn: Callable) -> tuple[list[UOp], bool]:
        result = fn(*[Tensor(node) for node in self.inputs])
        multiple = isinstance(result, (tuple, list))
        items = list(result) if multiple else [result]
        if not items:
            raise TypeError(f"{self.name}: the function returned no outputs")
        outputs = []
        for j, item in enumerate(items):
            if not isinstance(item, Tensor):
                raise TypeError(f"{self.name}: output {j} is a {type(item).__name__}, expected a "
                                "Tensor computed from the arguments (wrap constants with "
                                "x * 0 + c if you need them as outputs)")
            outputs.append(item.node)
        return outputs, multiple

    # ---- inspection ----------------------------------------------------------------------------
    @property
    def graph(self) -> str:
        """The UOp graph as text, one line per node."""
        labels = {node: name for node, name in zip(self.inputs, self.arg_names)}
        return graph_text(self.outputs, labels)

    def to_dot(self) -> str:
        """The UOp graph as Graphviz text, one node per UOp and one edge per source
        (anvil_llvm.viz.to_dot).

        >>> import anvil_llvm as av
        >>> f = av.NumericalFunction("f", lambda x: av.exp(x), (av.Arg(2),))
        >>> f.to_dot().count(" -> ")
        1
        """
        from .viz import to_dot
        return to_dot(self)

    def schedule_text(self) -> str:
        """The kernels (loop nests) this function is compiled into, without compiling it
        (anvil_llvm.viz.schedule_text).

        >>> import anvil_llvm as av
        >>> f = av.NumericalFunction("f", lambda x: (x * x).sum(), (av.Arg(50),))
        >>> print(f.schedule_text().splitlines()[0])
        f: 1 kernel, 0 bytes of workspace
        """
        from .viz import schedule_text
        return schedule_text(self)

    @property
    def symbol(self) -> str:
        return self.name

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return [o.shape for o in self.outputs]

    def _specs(self):
        inputs = [callpath.ArgSpec(n, a.shape, a.dtype.np) for n, a in
                  zip(self.arg_names, self.args)]
        out_names = ["out"] if len(self.outputs) == 1 else [f"out{j}" for j in
                                                            range(len(self.outputs))]
        outputs = [callpath.ArgSpec(n, o.shape, o.dtype.np) for n, o in
                   zip(out_names, self.outputs)]
        return inputs, outputs

    def lowered(self, target: Target | None = None) -> Lowered:
        """This function lowered for `target` (default: JIT code for this host): its LLVM IR,
        C-ABI symbol, external symbols, argument specs and workspace size."""
        target = Target.jit() if target is None else target
        found = self._lowered.get(target)
        if found is None:
            with progress.stage("lower", self.name):
                found = self._lowered[target] = lower(self.name, self.inputs, self.outputs,
                                                      *self._specs(), target)
        return found

    @functools.cached_property
    def _order(self) -> list[UOp]:
        """The graph in topological order (the cache key and the shared constants walk it)."""
        return toposort(self.outputs)

    def _shared_constants(self) -> list:
        """The constant arrays the JIT code of this function references instead of embedding
        them (one copy in the process for all functions capturing them)."""
        threshold = Target.jit().shared_constants
        if threshold is None:
            return []
        return [p for p in payloads(self._order) if p.array.nbytes >= threshold]

    @property
    def cache_key(self) -> str:
        """The key of this function's compiled code in the caches: a digest of its graph and
        signature (of its IR where an argument of the graph has no stable spelling), so that a
        hit needs no lowering. Argument names do not count: they change no code.

        >>> import anvil_llvm as av
        >>> a = av.NumericalFunction("k", lambda x: x + 1.0, (av.Arg(3),))
        >>> b = av.NumericalFunction("k", lambda y: y + 1.0, (av.Arg(3),))
        >>> a.cache_key == b.cache_key
        True
        """
        shipped = self.__dict__.get("_shipped_key")     # the pickling process's, same host
        if shipped is not None:
            return shipped
        digest = graph_digest(self.outputs, self._order) or "ir\0" + self.lowered().ir
        inputs, outputs = self._specs()
        signature = repr([(s.shape, s.dtype.str) for s in inputs + outputs])
        return cache.key("function", self.name, signature, str(self.multiple), digest)

    @property
    def llvm_ir(self) -> str:
        """The LLVM IR handed to the optimiser: the kernels and the C ABI entry point."""
        return self.lowered().ir

    @property
    def optimized_llvm_ir(self) -> str:
        """The LLVM IR after the O3 pipeline the JIT runs on `llvm_ir` (inlining, loop and SLP
        vectorisation, libmvec calls), as the code generator gets it: where to check that the
        loops are vectorised (docs/backend.md, "Loop vectorisation"). Computed on each access.

        >>> import anvil_llvm as av
        >>> f = av.NumericalFunction("f", lambda x: (x * x).sum(), (av.Arg(1000),))
        >>> "x double>" in f.optimized_llvm_ir      # <2 x double> and wider: vector code
        True
        """
        low = self.lowered()
        return jit.optimised_ir(low.ir, low.codegen_opt)

    @property
    def work_bytes(self) -> int:
        """Bytes of workspace the C ABI entry point needs."""
        return self.lowered().work_bytes

    # ---- compiling and calling -------------------------------------------------------------------
    def compile(self) -> "NumericalFunction":
        """Compile now (otherwise the first call does); returns self."""
        with self._lock:
            if self._native is None:
                self._build()
        return self

    def _build(self) -> None:
        """Load (or compile) the code and make the entry point; under `_lock`."""
        with progress.stage("compile", self.name):
            callpath.register_numpy_api()
            code = jit.build_lowered(self.cache_key, self.lowered, self._shared_constants())
            symbol, work_bytes, release_gil = (
                code.info[k] for k in ("symbol", "work_bytes", "release_gil"))
            self.address = code.addresses[symbol]
            # functions loaded from pickles (Dask loads one for every task) share the
            # workspace of their code; any other object has its own
            share = self.__dict__.setdefault("_workspace_share", os.urandom(8).hex())
            self._native = callpath.entry_point(
                self.name, *self._specs(), self.multiple, code, symbol, work_bytes,
                release_gil, traced=(Tensor, self.inline), share=share)
            self._lowered.clear()          # the IR text is not needed any more
            self.__dict__.pop("_order", None)
            self._call_natively()

    def _call_natively(self) -> None:
        """Make `fn(x)` go straight to native code (about 20 ns over `fn.native(x)`, against
        about 110 ns through a Python __call__): a builtin function as the class's __call__ is
        called without binding self, so the instance moves to a subclass of its own class whose
        __call__ is the entry point. A subclass that defines its own __call__ keeps it."""
        cls = type(self)
        if cls.__call__ is NumericalFunction.__call__:
            self.__class__ = type(cls.__name__, (cls,), {
                "__call__": self._native, "__slots__": (), "_uncompiled": cls,
                "__module__": cls.__module__, "__qualname__": cls.__qualname__})

    @property
    def native(self):
        """The compiled entry point itself, a builtin function called as `native(*inputs)` or
        `native(*inputs, out=outputs)`: the lowest-overhead way to call from Python."""
        return self.compile()._native

    def __call__(self, *args, **kwargs):
        if any(isinstance(a, Tensor) for a in (*args, *kwargs.values())):
            return self.inline(*args, **kwargs)
        return self.native(*args, **kwargs)

    def inline(self, *args, **kwargs):
        """This function's graph applied to traced Tensors (or constants) inside another
        function's trace, as JAX inlines a nested jit: derivatives flow through it. Calling
        the function on Tensors does this.

        >>> import anvil_llvm as av
        >>> square = av.NumericalFunction("square", lambda x: x * x, (av.Arg(2),))
        >>> outer = av.NumericalFunction("outer", lambda x: square(x).sum(), (av.Arg(2),))
        >>> float(outer(np.array([3.0, 4.0])))
        25.0
        """
        if "out" in kwargs:
            raise TypeError(f"{self.name}(): out= cannot be used while tracing")
        values = callpath.bind_arguments(self.name, self.arg_names, args, kwargs)
        mapping = {}
        for node, arg, name, value in zip(self.inputs, self.args, self.arg_names, values):
            where = f"{self.name}(): argument '{name}'"
            tensor = as_tensor(value, like=arg.dtype)
            if tensor.shape != arg.shape:
                raise ValueError(f"{where} must have shape {arg.shape}, got {tensor.shape}")
            if tensor.dtype.kind not in callpath.CONVERTS_FROM[arg.dtype.kind]:
                raise TypeError(f"{where} must have dtype {arg.dtype} (or one that converts to "
                                f"it without losing its kind), got {tensor.dtype}")
            mapping[node] = tensor.astype(arg.dtype).node
        outputs = [Tensor(o) for o in substitute(self.outputs, mapping)]
        return tuple(outputs) if self.multiple else outputs[0]

    @property
    def numba(self) -> anvil_llvm.interop.numba.NumbaFunction:  # noqa: F821
        """This function callable inside `@numba.njit` code, inlined there: `F(x..., out...)`
        writes the outputs, `F(x...)` returns them; passed as an argument it is a first-class
        function (anvil_llvm.interop.numba, docs/numba.md). Sizes are checked.

        >>> import numpy as np, numba, anvil_llvm as av
        >>> f = av.NumericalFunction("cube", lambda x: x ** 3, (av.Arg(2),))
        >>> F = f.numba
        >>> numba.njit(lambda x: F(x))(np.array([2.0, 3.0]))
        array([ 8., 27.])
        """
        from .interop.numba import numba_form
        return numba_form(self)

    @property
    def numba_unchecked(self) -> anvil_llvm.interop.numba.NumbaFunction:  # noqa: F821
        """`numba` without the run-time size checks (a wrong size writes out of bounds)."""
        from .interop.numba import numba_form
        return numba_form(self, checked=False)

    def export(self, out_dir, name: str | None = None, **kwargs):
        """Export this function as a static library with C and C++ headers in `out_dir` (the
        library is named after the function unless `name` is given); the keywords are those
        of `anvil_llvm.export` (target, cpu, shared, casadi, casadi_int). Returns the
        `anvil_llvm.aot.Library` written.

        >>> import tempfile, anvil_llvm as av
        >>> f = av.NumericalFunction("twice", lambda x: 2.0 * x, (av.Arg(4),))
        >>> f.export(tempfile.mkdtemp()).symbols
        {'twice': 'twice_twice'}
        """
        from .aot.library import export_function
        return export_function(self, out_dir, name, **kwargs)

    def map(self, *args, threads: int | None = None):
        """This function at every point of a batch, split over `threads` threads: see
        `anvil_llvm.parallel.map_batch`."""
        from .parallel import map_batch
        return map_batch(self, *args, threads=threads)

    # ---- pickling: the graph and the object code travel together -----------------------------
    def __reduce__(self):
        """Pickled with its graph (flat: any depth) and the object code of its module with the
        host it was built for, so that a process on the same host loads that code instead of
        compiling (`anvil_llvm.stats()` counts it); elsewhere, or from another version, the
        graph is compiled again. The code is built here first if it is not yet."""
        state = {k: v for k, v in self.__dict__.items() if k not in _RUNTIME}
        state["inputs"], state["outputs"] = graph_state(self.inputs + self.outputs), None
        self.compile()
        symbol = callpath.entry_symbol(*self._specs(), self.multiple)
        state["objects"] = [
            (key, cache.encode(*entry[:2], cache.host_record(), entry.info)) for key, entry in (
                (self.cache_key, jit.object_entry(self.cache_key, self.lowered)),
                (jit.entry_point_key(symbol), jit.entry_point_object(
                    symbol, lambda: callpath.entry_text(*self._specs(), self.multiple))))]
        plain = getattr(type(self), "_uncompiled", type(self))
        return (_unpickled, (getattr(plain, "flat_class", plain), _PICKLE_FORMAT, state))

    def __repr__(self) -> str:
        args = ", ".join(f"{n}: {a.dtype}{list(a.shape)}" for n, a in
                         zip(self.arg_names, self.args))
        outs = ", ".join(f"{o.dtype}{list(o.shape)}" for o in self.outputs)
        return f"NumericalFunction({self.name}({args}) -> {outs})"


_PICKLE_FORMAT = 1
# attributes of a live function that a pickle does not carry
_RUNTIME = frozenset({"_native", "_lowered", "_lock", "address", "_order", "_batched",
                      "_numba_form", "_numba_form_unchecked", "_shipped_key",
                      "_workspace_share"})


_UNPICKLED = "unpickled"
"""The workspace share key of every function loaded from a pickle (not pickled itself: a
pickle's bytes must not change between processes, numba's cache keys and Dask's tokens hash
them)."""


def _unpickled(cls: type, version: int, state: dict) -> NumericalFunction:
    """A function from its pickled `state`: the graph rebuilt, the object code (its own and its
    entry point's) provided to the JIT when it was built for this host (else compiled again on
    first use). Damaged object code is a ValueError, never loaded."""
    if version != _PICKLE_FORMAT:
        raise ValueError(f"a pickled anvil_llvm function of format {version}; this version "
                         f"reads format {_PICKLE_FORMAT}")
    state = dict(state)
    objects = state.pop("objects")
    nodes = graph_from_state(state["inputs"])
    count = len(state["args"])
    state["inputs"], state["outputs"] = nodes[:count], nodes[count:]
    fn = object.__new__(cls)
    fn.__dict__.update(state, _workspace_share=_UNPICKLED)
    fn._native, fn._lowered, fn._lock = None, {}, threading.Lock()
    if "structure" in state:
        from .ad.dense import nest
        nest(fn, state["structure"])
    for key, blob in objects:        # the function's code, then its Python entry point's
        try:
            entry, built_for = cache.unpack(blob)
        except ValueError as e:
            raise ValueError(f"unpickling {fn.name}: {e}") from None
        if built_for == cache.host_record():
            jit.provide(key, entry)
            # the function's key is a digest of its graph and of the host record: the same here
            fn.__dict__.setdefault("_shipped_key", key)
    return fn


class SparseNumericalFunction(NumericalFunction):
    """A function returning the nonzeros of a sparse matrix (a sparse Jacobian or Hessian) in
    the CSC order of `pattern`: called like any NumericalFunction (the same native call path,
    `out=`), with the structure beside it.

    `indices` and `indptr` (int32, 0-based) and `shape` complete the CSC arrays; `nnz` counts
    the entries, `ncolors` the directional derivatives one call computes, `coloring` is the
    colouring used (anvil_llvm.ad.coloring.Coloring), `csc(*inputs)` the scipy.sparse array.
    `entrywise`: the nonzeros are computed one by one, with no directional derivatives
    (ad/entrywise.py); `coloring` and `ncolors` then tell what a colouring would use (it is
    made when first asked for).

    >>> import numpy as np, anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x[1:] * x[:-1], (av.Arg(4),))
    >>> J = av.ad.spjacobian(f)
    >>> J.nnz, J.ncolors, J.csc(np.arange(1.0, 5.0)).toarray().tolist()
    (6, 2, [[2.0, 1.0, 0.0, 0.0], [0.0, 3.0, 2.0, 0.0], [0.0, 0.0, 4.0, 3.0]])
    """

    @classmethod
    def from_coloring(cls, name: str, fn: NumericalFunction, values: UOp, coloring,
                      pattern=None) -> "SparseNumericalFunction":
        """The function of `fn`'s arguments returning `values`, the nonzeros of `pattern`
        (by default `coloring.pattern`) in CSC order. `coloring`: the Coloring used, or (for
        nonzeros computed entry by entry) a function making it when first asked for."""
        result = cls.from_graph(name, fn.args, [values], False, fn.arg_names)
        result.origin = getattr(fn, "origin", None)
        pattern = coloring.pattern if pattern is None else pattern
        result._coloring, result.pattern, result.shape = coloring, pattern, pattern.shape
        result.entrywise = callable(coloring)
        result.indices = pattern.indices.astype(np.int32)
        result.indptr = pattern.indptr.astype(np.int32)
        return result

    @property
    def coloring(self):
        """The colouring of the pattern (anvil_llvm.ad.coloring.Coloring): the one the
        directional derivatives follow, or, where the nonzeros are computed entry by entry,
        the one `spjacobian`/`sphessian` would have used (made on first use)."""
        if callable(self._coloring):
            self._coloring = self._coloring()
        return self._coloring

    @property
    def nnz(self) -> int:
        return int(self.pattern.nnz)

    @property
    def ncolors(self) -> int:
        return self.coloring.ncolors

    def spy(self, **kwargs):
        """Draw this matrix's pattern, each nonzero coloured by the directional derivative it is
        read from; the keywords are those of `anvil_llvm.viz.spy` (ax, path, title, size).

        >>> import tempfile, pathlib, anvil_llvm as av
        >>> f = av.NumericalFunction("f", lambda x: x[1:] * x[:-1], (av.Arg(5),))
        >>> av.ad.spjacobian(f).spy(path=pathlib.Path(tempfile.mkdtemp()) / "J.png").suffix
        '.png'
        """
        from .viz import spy
        return spy(self, **kwargs)

    def csc(self, *args, **kwargs):
        """The matrix at these inputs, as a scipy.sparse.csc_array."""
        import scipy.sparse as sp
        return sp.csc_array((self(*args, **kwargs), self.indices, self.indptr),
                            shape=self.shape)

    def __repr__(self) -> str:
        how = "entry by entry" if self.entrywise else f"{self.ncolors} colours"
        return (f"Sparse{super().__repr__()[:-1]}: {self.shape[0]}x{self.shape[1]}, "
                f"{self.nnz} nonzeros, {how})")


def numerical_function(name: str, *shapes) -> Callable[[Callable], NumericalFunction]:
    """Decorator: trace a function for the given argument shapes (or Args).

    >>> import anvil_llvm as av
    >>> @av.numerical_function("cost", 5)
    ... def cost(x):
    ...     return (x * x).sum()
    >>> float(cost(np.arange(1.0, 6.0)))
    55.0
    """
    def decorate(fn: Callable) -> NumericalFunction:
        return NumericalFunction(name, fn, tuple(as_arg(s, i) for i, s in enumerate(shapes)))
    return decorate
