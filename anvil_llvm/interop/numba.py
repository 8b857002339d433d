"""`fn.numba`: calling generated functions inside `@numba.njit` code (docs/numba.md).

The function's LLVM module, lowered so that it needs nothing but libm/libmvec from the process
(constant arrays embedded, contractions as loop nests: `Target.object()`'s IR), is added to a
numba code library once per process. An `@intrinsic` links that library into the caller
(`context.add_linking_libs`) and calls the C-ABI symbol, so LLVM inlines the function into the
user's loop. The symbol carries a digest of its IR (numba links such modules `linkonce_odr`:
two different bodies under one name would silently become one).

Two roles of one object:

- used as a global (or closure variable) inside `@njit` code, `Fn(x..., out...)` writes the
  outputs and `Fn(x...)` returns new arrays: inlined, about the cost of hand-written code;
- passed as an argument to an `@njit` function it is a first-class function (numba's Wrapper
  Address Protocol): an indirect call, but one compiled solver serves every function of the
  same arity.

Workspace: up to `STACK_WORK_LIMIT` bytes it is a 64-byte aligned stack slot in the caller's
frame (an `alloca` in the entry block: one per thread, nothing allocated in the loop). Larger
workspaces come from a per-function pool of preallocated slots taken with an atomic
compare-and-swap (as many slots as numba has threads, plus one); a call that finds every slot
busy (more concurrent callers than that) allocates with `aligned_alloc` and frees after the call.
Code that uses the pool embeds its address, so numba will not cache it (`cache=True` warns and
compiles).

numba's on-disk cache (`cache=True`) keys a function on its bytecode and closure only, so a
cached caller would keep running an old generated function. Importing this module adds the
symbols (name and IR digest) of the generated functions a cached function inlines to its index
key (`linked_symbols`): a changed function is compiled again, an unchanged one is loaded.
"""
from __future__ import annotations

import functools
import inspect
import threading
from dataclasses import dataclass, field
from types import CodeType
from typing import Any

import llvmlite.binding as llvm
import numba
import numba.experimental.function_type  # WAP objects type as FunctionType (numba 8282)
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import caching, cgutils, errors
from numba.core.compiler_lock import global_compiler_lock
from numba.core.dispatcher import Dispatcher
from numba.core.extending import _overload_default_jit_options
from numba.core.registry import cpu_target
from numba.core.typing.templates import make_overload_template
from numba.core.typing.typeof import Purpose, typeof_impl
from numba.extending import intrinsic, models, overload_attribute, register_model

from ..backend import loader
from ..backend.lower import Lowered
from ..backend.target import Target

STACK_WORK_LIMIT = 64 * 1024     # workspaces up to this size are stack slots of the caller
_ALIGN = 64

_lock = threading.Lock()
_linked: dict[str, _Linked] = {}          # symbol -> its library, process-wide

_I8, _I32, _I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
_PTR, _I64P = _I8.as_pointer(), _I64.as_pointer()    # numba's IR is written with typed pointers


def numba_target() -> Target:
    """The target functions are lowered for to be linked into numba's code: the host, with
    constants embedded and contractions as loop nests, so that the module needs no symbol
    but libm's and libmvec's (which numba's process resolves)."""
    return Target.object()


@dataclass(eq=False)
class _Linked:
    """One lowered function in numba's code library: what calls to it need."""

    name: str
    symbol: str
    arg_names: tuple[str, ...]
    inputs: tuple            # ArgSpec
    outputs: tuple
    work_bytes: int
    library: Any             # numba CodeLibrary holding the module
    pool: np.ndarray | None = None          # slots for large workspaces, and their flags
    flags: np.ndarray | None = None
    wrappers: dict = field(default_factory=dict)   # checked -> (library, address)
    sparse: dict = field(default_factory=dict)     # nnz, indices, indptr of a sparse function

    @property
    def specs(self) -> tuple:
        return self.inputs + self.outputs

    def pool_addresses(self) -> tuple[int, int, int, int]:
        """(buffer, flags, slot stride, slots) of the workspace pool, made on first use."""
        with _lock:
            if self.pool is None:
                slots = numba.config.NUMBA_NUM_THREADS + 1
                stride = -(-self.work_bytes // _ALIGN) * _ALIGN
                block = np.zeros(slots * stride + _ALIGN, np.uint8)
                start = -block.ctypes.data % _ALIGN
                self.pool = block[start:start + slots * stride]
                self.flags = np.zeros(slots, np.int64)
            stride = self.pool.size // self.flags.size
            return self.pool.ctypes.data, self.flags.ctypes.data, stride, self.flags.size


def _codegen():
    return cpu_target.target_context.codegen()


def _linked_for(fn) -> _Linked:
    """The process's library holding `fn`'s module (made once per symbol)."""
    low: Lowered = fn.lowered(numba_target())
    with _lock:
        found = _linked.get(low.symbol)
    if found is not None:
        return found
    missing = [s for s in low.externals if not loader.address(s)]
    if missing:
        raise RuntimeError(f"{fn.name}.numba: the generated code needs the symbols {missing}, "
                           "which this process does not provide")
    codegen = _codegen()
    library = codegen.create_library(f"anvil.{low.symbol}")
    module = llvm.parse_assembly(low.ir)
    module.triple = llvm.get_process_triple()
    module.data_layout = str(codegen.target_data)
    module.verify()
    library.add_llvm_module(module)
    with global_compiler_lock:
        library.finalize()
    linked = _Linked(fn.name, low.symbol, tuple(fn.arg_names), low.inputs, low.outputs,
                     low.work_bytes, library)
    with _lock:
        return _linked.setdefault(low.symbol, linked)


# ---- code shared by the inlined call and the first-class wrapper -------------------------------
def _workspace(context, builder, linked: _Linked):
    """A pointer to `linked.work_bytes` bytes of 64-byte aligned workspace and a function that
    gives it back after the call."""
    size = linked.work_bytes
    if size == 0:
        return ir.Constant(_PTR, None), lambda: None
    if size <= STACK_WORK_LIMIT:
        slot = cgutils.alloca_once(builder, ir.ArrayType(_I8, size))
        slot.align = _ALIGN
        return builder.bitcast(slot, _PTR), lambda: None
    # The pool: find a free slot with a compare-and-swap; none free -> aligned_alloc.
    buffer, flags, stride, slots = linked.pool_addresses()
    pool = builder.bitcast(context.add_dynamic_addr(builder, buffer, "anvil workspace"), _PTR)
    table = builder.bitcast(context.add_dynamic_addr(builder, flags, "anvil workspace flags"),
                            _I64P)
    index = cgutils.alloca_once_value(builder, ir.Constant(_I64, 0))
    result = cgutils.alloca_once(builder, _PTR)
    taken = cgutils.alloca_once(builder, _I64)
    fn = builder.function
    search, found, fallback, done = (fn.append_basic_block(f"anvil.ws.{n}") for n in
                                     ("search", "found", "fallback", "done"))
    builder.branch(search)
    builder.position_at_end(search)
    i = builder.load(index)
    with builder.if_then(builder.icmp_unsigned("==", i, ir.Constant(_I64, slots)),
                         likely=False):
        builder.branch(fallback)
    flag = builder.gep(table, [i], inbounds=True, source_etype=_I64)
    pair = builder.cmpxchg(flag, ir.Constant(_I64, 0), ir.Constant(_I64, 1), "acquire",
                           "monotonic")
    builder.store(builder.add(i, ir.Constant(_I64, 1)), index)
    builder.cbranch(builder.extract_value(pair, 1), found, search)
    builder.position_at_end(found)
    builder.store(builder.gep(pool, [builder.mul(i, ir.Constant(_I64, stride))], inbounds=True,
                              source_etype=_I8), result)
    builder.store(i, taken)
    builder.branch(done)
    builder.position_at_end(fallback)
    alloc = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_PTR, [_I64, _I64]),
                                           "aligned_alloc")
    memory = builder.call(alloc, [ir.Constant(_I64, _ALIGN), ir.Constant(_I64, stride)])
    with builder.if_then(cgutils.is_null(builder, memory), likely=False):
        context.call_conv.return_user_exc(
            builder, MemoryError, (f"{linked.name}: cannot allocate the workspace",))
    builder.store(memory, result)
    builder.store(ir.Constant(_I64, -1), taken)
    builder.branch(done)
    builder.position_at_end(done)
    work = builder.load(result)

    def release():
        slot = builder.load(taken)
        with builder.if_else(builder.icmp_signed("<", slot, ir.Constant(_I64, 0))) as (
                heap, pooled):
            with heap:
                free = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(ir.VoidType(), [_PTR]), "free")
                builder.call(free, [work])
            with pooled:
                flag = builder.gep(table, [slot], inbounds=True, source_etype=_I64)
                builder.store_atomic(ir.Constant(_I64, 0), flag, "release", 8)
    return work, release


def _call_symbol(builder, linked: _Linked, pointers: list, work) -> None:
    fnty = ir.FunctionType(_I32, [_PTR] * (len(pointers) + 1))
    callee = cgutils.get_or_insert_function(builder.module, fnty, linked.symbol)
    builder.call(callee, [builder.bitcast(p, _PTR) for p in pointers] + [work])


def _argument_pointer(context, builder, ty, value, spec):
    """The C-ABI pointer for one argument: an array's data, or a stack copy of a scalar."""
    if isinstance(ty, types.Array):
        return context.make_array(ty)(context, builder, value).data
    dtype = numba.from_dtype(spec.dtype)
    slot = cgutils.alloca_once(builder, context.get_value_type(dtype))
    builder.store(context.cast(builder, value, ty, dtype), slot)
    return slot


def _size_message(name: str, arg: str, spec) -> str:
    size = int(np.prod(spec.shape, dtype=np.int64))
    return (f"{name}(): argument '{arg}' must have {size} element{'s' * (size != 1)} "
            f"(shape {spec.shape}), got an array of another size; nothing was written")


# ---- typing ------------------------------------------------------------------------------------
def _check_types(linked: _Linked, argtys: tuple) -> None:
    """Raise a TypingError naming the function and the argument for a wrong kind of argument."""
    name, n_in, n_out = linked.name, len(linked.inputs), len(linked.outputs)
    if len(argtys) not in (n_in, n_in + n_out):
        ins = ", ".join(linked.arg_names)
        outs = ", ".join(s.name for s in linked.outputs)
        raise errors.TypingError(
            f"{name}.numba: expected {n_in} input{'s' * (n_in != 1)} ({ins}), then optionally "
            f"{n_out} output array{'s' * (n_out != 1)} ({outs}), got {len(argtys)} arguments")
    names = list(linked.arg_names) + [s.name for s in linked.outputs]
    for k, (ty, spec) in enumerate(zip(argtys, linked.specs)):
        dtype = numba.from_dtype(spec.dtype)
        where = f"{name}.numba: argument '{names[k]}'"
        if k < n_in and spec.shape == () and isinstance(ty, (types.Float, types.Integer,
                                                             types.Boolean)):
            if not (dtype == ty or (isinstance(dtype, types.Float) and not
                                    isinstance(ty, types.Boolean))):
                raise errors.TypingError(f"{where} must be a {dtype} scalar or array, got {ty}")
            continue
        if not isinstance(ty, types.Array):
            raise errors.TypingError(f"{where} must be a C-contiguous {dtype} array of "
                                     f"{int(np.prod(spec.shape))} elements, got {ty}")
        if ty.dtype != dtype:
            raise errors.TypingError(f"{where} must have dtype {dtype}, got {ty.dtype}")
        if ty.layout != "C":
            raise errors.TypingError(f"{where} must be C-contiguous (layout 'C'), got layout "
                                     f"'{ty.layout}': use np.ascontiguousarray")
        if k >= n_in and not ty.mutable:
            raise errors.TypingError(f"{where} is an output and must be writable")


def _make_intrinsic(linked: _Linked, checked: bool):
    """The intrinsic `call(inputs..., outputs...)`: size checks, workspace, the C-ABI call."""
    names = list(linked.arg_names) + [s.name for s in linked.outputs]

    def typer(typingctx, *argtys):
        _check_types(linked, argtys)
        if len(argtys) != len(linked.specs):
            return None

        def codegen(context, builder, sig, args):
            context.add_linking_libs([linked.library])
            if checked:
                for k, (ty, value, spec) in enumerate(zip(sig.args, args, linked.specs)):
                    if not isinstance(ty, types.Array):
                        continue
                    nitems = context.make_array(ty)(context, builder, value).nitems
                    size = ir.Constant(nitems.type, int(np.prod(spec.shape, dtype=np.int64)))
                    with builder.if_then(builder.icmp_signed("!=", nitems, size), likely=False):
                        context.call_conv.return_user_exc(
                            builder, ValueError, (_size_message(linked.name, names[k], spec),))
            pointers = [_argument_pointer(context, builder, ty, value, spec)
                        for ty, value, spec in zip(sig.args, args, linked.specs)]
            work, release = _workspace(context, builder, linked)
            _call_symbol(builder, linked, pointers, work)
            release()
            return context.get_dummy_value()
        return types.void(*argtys), codegen

    # numba folds star arguments of an intrinsic as a tuple: give the typer one parameter each.
    params = ", ".join(f"a{k}" for k in range(len(names)))
    namespace = {"typer": typer}
    source = f"def call(typingctx, {params}):\n    return typer(typingctx, {params})"
    exec(source, namespace)  # noqa: S102 -- our own text: a signature of n parameters
    call = namespace["call"]
    call.__name__ = f"anvil_{linked.symbol.replace('.', '_')}"
    return intrinsic(call)


class NumbaFunctionType(types.Function):
    """The numba type of `fn.numba` used inside `@njit` code (a global or closure value): a
    function whose calls are typed by `_overload` and inlined."""

    def __init__(self, linked: _Linked, checked: bool):
        self.linked, self.checked = linked, checked
        self.call = _make_intrinsic(linked, checked)
        key = f"anvil.numba.{linked.symbol}{'' if checked else '.unchecked'}"
        template = make_overload_template(_Key(key), lambda *args: _overload(self, args),
                                          dict(_overload_default_jit_options), False, "never")
        super().__init__(template)


register_model(NumbaFunctionType)(models.OpaqueModel)


class _Key(str):
    """A template key (numba names the template after its `__name__`)."""

    @property
    def __name__(self) -> str:
        return str(self)


def _allocating_impl(ty: NumbaFunctionType):
    """`Fn(inputs...)` -> new output array(s) (a float for a shape-() output)."""
    outs = ty.linked.outputs
    namespace = {"np": np, "call": ty.call}
    lines = ["def impl(*args):"]
    for j, spec in enumerate(outs):
        namespace[f"dtype{j}"] = spec.dtype.type
        shape = spec.shape if spec.shape else (1,)
        lines.append(f"    out{j} = np.empty({shape!r}, dtype{j})")
    names = ", ".join(f"out{j}" for j in range(len(outs)))
    lines.append(f"    call(*(args + ({names},)))")
    results = [f"out{j}[0]" if spec.shape == () else f"out{j}" for j, spec in enumerate(outs)]
    lines.append(f"    return {results[0]}" if len(results) == 1 else
                 f"    return ({', '.join(results)})")
    exec("\n".join(lines), namespace)  # noqa: S102 -- our own text, from shapes and dtypes
    return namespace["impl"]


def _overload(ty: NumbaFunctionType, argtys: tuple):
    """The implementation of `Fn(*argtys)` inside @njit code."""
    _check_types(ty.linked, tuple(argtys))
    if len(argtys) == len(ty.linked.inputs):
        return _allocating_impl(ty)
    call = ty.call

    def impl(*args):
        call(*args)
    return impl


def _attribute(name: str):
    @overload_attribute(NumbaFunctionType, name)
    def get(self):
        value = self.linked.sparse.get(name)
        if value is None:
            raise errors.TypingError(f"{self.linked.name}.numba has no attribute '{name}' "
                                     "(only sparse functions have nnz, indices, indptr)")
        return lambda self: value
    return get


for _name in ("nnz", "indices", "indptr"):
    _attribute(_name)


# ---- the Python object ---------------------------------------------------------------------------
class NumbaFunction(types.WrapperAddressProtocol):
    """A generated function in numba's code: `fn.numba` (size-checked) or `fn.numba_unchecked`.

    Inside `@njit` code, as a global or closure variable:

    - `Fn(x..., out...)` writes the outputs (preallocated arrays of the output dtype, any shape
      with the right number of elements, C-contiguous); inputs are C-contiguous arrays with the
      right number of elements (shape-() inputs may be scalars). Returns None.
    - `Fn(x...)` returns new arrays of the output shapes (a float for a shape-() output, a tuple
      for several outputs).
    - A wrong number of elements raises ValueError and writes nothing (not checked by the
      `numba_unchecked` form); a wrong dtype, layout or kind of argument is a TypingError at
      compile time.
    - Sparse functions have `Fn.nnz`, `Fn.indices`, `Fn.indptr` (constants).

    Passed as an argument into an `@njit` function it is a first-class function of signature
    `int32(a0, ..., out0, ...)` with every argument a 1-D C-contiguous array
    (`float64[::1]`...): the call returns 0, or 1 + the index of the first argument of the wrong
    size (nothing written). One compiled solver serves every function of the same arity and
    dtypes.

    From Python, `Fn(x..., out...)` and `Fn(x...)` call the function the same way.

    >>> import numpy as np, numba, anvil_llvm as av
    >>> f = av.NumericalFunction("sq", lambda x: x * x, (av.Arg(3),))
    >>> F = f.numba
    >>> @numba.njit
    ... def twice(x):
    ...     out = np.empty(3)
    ...     F(x, out)
    ...     return out + F(x)
    >>> twice(np.array([1.0, 2.0, 3.0]))
    array([ 2.,  8., 18.])
    """

    def __init__(self, fn, checked: bool = True):
        self.function = fn
        self.checked = checked
        self.linked = _linked_for(fn)
        if hasattr(fn, "pattern"):
            self.linked.sparse = {"nnz": int(fn.nnz), "indices": fn.indices.copy(),
                                  "indptr": fn.indptr.copy()}
        self.numba_type = NumbaFunctionType(self.linked, checked)

    @property
    def name(self) -> str:
        return self.linked.name

    @property
    def symbol(self) -> str:
        """The C-ABI symbol in numba's code (the name and a digest of the IR)."""
        return self.linked.symbol

    def __getattr__(self, name: str):
        if name in ("nnz", "indices", "indptr", "shape", "ncolors") and hasattr(
                self.__dict__.get("function"), name):
            return getattr(self.function, name)
        raise AttributeError(f"{type(self).__name__} object has no attribute '{name}'")

    def __call__(self, *args):
        n_in, n_out = len(self.linked.inputs), len(self.linked.outputs)
        if len(args) == n_in:
            return self.function(*args)
        if len(args) != n_in + n_out:
            raise TypeError(f"{self.name}.numba(): expected {n_in} inputs and optionally "
                            f"{n_out} outputs, got {len(args)} arguments")
        outs = args[n_in:]
        self.function(*args[:n_in], out=outs if n_out > 1 else outs[0])
        return None

    # The Wrapper Address Protocol (first-class use) ---------------------------------------------
    def signature(self):
        """`int32(inputs..., outputs...)`, every argument a 1-D C-contiguous array."""
        return types.int32(*[types.Array(numba.from_dtype(s.dtype), 1, "C")
                             for s in self.linked.specs])

    def __wrapper_address__(self) -> int:
        return _wrapper(self.linked, self.checked, self.signature())

    def __reduce__(self):
        """Pickled as its function (numba pickles a cached function's closure to key it)."""
        return numba_form, (self.function, self.checked)

    def __repr__(self) -> str:
        kind = "numba" if self.checked else "numba_unchecked"
        return f"<{self.name}.{kind}: {self.symbol}>"


@typeof_impl.register(NumbaFunction)
def _typeof(value: NumbaFunction, c):
    if c.purpose == Purpose.argument:
        return types.FunctionType(value.signature())
    return value.numba_type


def _wrapper(linked: _Linked, checked: bool, sig) -> int:
    """The address of the first-class wrapper: numba's array structs in, status out."""
    with _lock:
        found = linked.wrappers.get(checked)
    if found is not None:
        return found[1]
    context = cpu_target.target_context
    name = f"anvil.wap.{'' if checked else 'unchecked.'}{linked.symbol}"
    module = ir.Module(name)
    argtys = [context.get_value_type(t) for t in sig.args]
    function = ir.Function(module, ir.FunctionType(_I32, argtys), name)
    builder = ir.IRBuilder(function.append_basic_block("entry"))
    arrays = [context.make_array(t)(context, builder, v) for t, v in zip(sig.args, function.args)]
    if checked:
        for k, (array, spec) in enumerate(zip(arrays, linked.specs)):
            size = ir.Constant(_I64, int(np.prod(spec.shape, dtype=np.int64)))
            with builder.if_then(builder.icmp_signed("!=", array.nitems, size), likely=False):
                builder.ret(ir.Constant(_I32, k + 1))
    work, release = _workspace(_NoRaise(context), builder, linked)
    _call_symbol(builder, linked, [a.data for a in arrays], work)
    release()
    builder.ret(ir.Constant(_I32, 0))
    library = _codegen().create_library(name)
    library.add_linking_library(linked.library)
    library.add_ir_module(module)
    with global_compiler_lock:
        library.finalize()
    address = library.get_pointer_to_function(name)
    with _lock:
        return linked.wrappers.setdefault(checked, (library, address))[1]


class _NoRaise:
    """numba's context for code outside numba's calling convention: an allocation failure in
    the first-class wrapper returns status -1 instead of raising."""

    def __init__(self, context):
        self._context = context
        self.call_conv = self

    def __getattr__(self, name):
        return getattr(self._context, name)

    def return_user_exc(self, builder, exc, args):
        builder.ret(ir.Constant(_I32, -1))


# ---- numba's on-disk cache: keyed by the digests of the inlined functions ------------------------
def _names(code: CodeType) -> set[str]:
    """The global and attribute names a code object and the code nested in it use."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _names(const)
    return names


def _referenced(func) -> list:
    """The values `func` may reach by name: its globals, attributes of its global modules, and
    its closure's contents."""
    names = _names(func.__code__)
    scope = getattr(func, "__globals__", {})
    values = [scope[n] for n in names if n in scope]
    values += [getattr(m, n) for m in values if inspect.ismodule(m) for n in names
               if hasattr(m, n)]
    for cell in func.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:          # an empty cell
            pass
    return values


def linked_symbols(py_func) -> tuple[str, ...]:
    """The symbols (name and IR digest) of the generated functions `py_func` calls through
    `fn.numba`, directly or in the @njit functions it calls: what numba's cache key of
    `py_func` must hold so that a changed generated function is compiled again.

    >>> import numba, anvil_llvm as av
    >>> F = av.NumericalFunction("twice", lambda x: 2.0 * x, (av.Arg(2),)).numba
    >>> inner = numba.njit(lambda x: F(x))
    >>> def outer(x):
    ...     return inner(x) + 1.0
    >>> linked_symbols(outer) == (F.symbol,)
    True
    """
    found, seen = set(), set()

    def visit(func) -> None:
        if id(func) in seen:
            return
        seen.add(id(func))
        for value in _referenced(func):
            if isinstance(value, NumbaFunction):
                found.add(value.symbol if value.checked else f"{value.symbol}.unchecked")
            elif isinstance(value, Dispatcher):
                visit(value.py_func)
    visit(py_func)
    return tuple(sorted(found))


def _keyed_by_linked_symbols(index_key):
    """numba's `Cache._index_key` with the symbols of the inlined generated functions added
    (unchanged for functions that inline none)."""
    @functools.wraps(index_key)
    def keyed(self, sig, codegen):
        key = index_key(self, sig, codegen)
        symbols = linked_symbols(self._py_func)
        return key + (symbols,) if symbols else key
    keyed.anvil_linked_symbols = True
    return keyed


if not getattr(caching.Cache._index_key, "anvil_linked_symbols", False):
    caching.Cache._index_key = _keyed_by_linked_symbols(caching.Cache._index_key)


_forms_lock = threading.Lock()


def numba_form(fn, checked: bool = True) -> NumbaFunction:
    """`fn.numba` (checked) or `fn.numba_unchecked`: made once per function.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("h", lambda x: x + 1.0, (av.Arg(2),))
    >>> numba_form(f) is f.numba, numba_form(f, checked=False).checked
    (True, False)
    """
    if not (hasattr(fn, "lowered") and hasattr(fn, "arg_names")):
        raise TypeError(f"fn: expected a NumericalFunction, got {type(fn).__name__}")
    key = "_numba_form" if checked else "_numba_form_unchecked"
    with _forms_lock:
        form = fn.__dict__.get(key)
        if form is None:
            form = fn.__dict__[key] = NumbaFunction(fn, checked)
    return form
