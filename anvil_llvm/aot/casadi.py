"""CasADi's external-function API for exported functions, as LLVM IR (no C compiler needed):
per function `f` the symbols `casadi.external("f", "lib<name>.so")` looks up,

    int f(const casadi_real **arg, casadi_real **res, casadi_int *iw, casadi_real *w, int mem);
    casadi_int f_n_in(void), f_n_out(void);
    const casadi_int *f_sparsity_in(casadi_int i), *f_sparsity_out(casadi_int i);
    const char *f_name_in(casadi_int i), *f_name_out(casadi_int i);
    int f_work(casadi_int *sz_arg, casadi_int *sz_res, casadi_int *sz_iw, casadi_int *sz_w);

with `casadi_int` a 64-bit `long long` (CasADi's default) or a 32-bit `int` (acados, which also
passes `mem` as a NULL pointer: ignored either way). `f` calls the exported C-ABI function:
`arg[i] == NULL` reads zeros, `res[j] == NULL` writes into scratch space; the zeros, the scratch
and the 64-byte aligned workspace are carved out of `w`, whose size `f_work` reports.

Every input and dense output is a column vector of its elements in row-major order ({n, 1},
dense); a sparse result (spjacobian, sphessian) is its rows x cols matrix with the CSC pattern,
which is CasADi's own compressed column storage, so the nonzeros pass unchanged. That is the
plain `Signature` of a function; the derivative entry points (casadi_derivatives.py) have
others, whose `Slot`s say which argument of the C-ABI function each CasADi input and output is
(or that it has no nonzeros). The sparsity patterns are binary data in the object (data.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import Blob, array_bytes
from .exported import Exported, size

_CASADI_INT = {"long long": ("i64", np.int64), "int": ("i32", np.int32)}


# C library names a CasADi entry point (unprefixed: `f`, `f_work`, ...) must not take: defining
# one would replace the C library's function for the generated code and for the program.
LIBC = frozenset("""
    acos acosh asin asinh atan atan2 atanh cbrt ceil copysign cos cosh erf erfc exp exp10 exp2
    expm1 fabs fdim floor fma fmax fmin fmod frexp hypot ldexp lgamma llrint llround log log10
    log1p log2 logb lrint lround modf nan nearbyint nextafter pow remainder remquo rint round
    scalbn sin sincos sinh sqrt tan tanh tgamma trunc j0 j1 y0 y1
    abort abs atexit calloc exit free malloc memcmp memcpy memmove memset printf puts realloc
    strcmp strcpy strlen
""".split())


@dataclass(frozen=True, eq=False)
class Slot:
    """One input or output as CasADi sees it: its name, its matrix shape, its pattern (None:
    dense; else CSC column pointers and row indices) and the argument of the C-ABI function it
    is (`source`: an input or output position), or None when it has no nonzeros (CasADi's
    nominal outputs among a derivative's inputs, structurally zero derivative blocks)."""

    name: str
    rows: int
    cols: int
    colind: np.ndarray | None = None
    row: np.ndarray | None = None
    source: int | None = None

    def pattern(self) -> np.ndarray:
        """CasADi's sparsity: {nrow, ncol, 1} when dense, else {nrow, ncol, colind, row}."""
        if self.colind is None:
            return np.array([self.rows, self.cols, 1], np.int64)
        return np.concatenate([[self.rows, self.cols], self.colind, self.row]).astype(
            np.int64)


def empty(name: str, rows: int, cols: int) -> Slot:
    """A slot with no nonzeros (read from nowhere, written nowhere)."""
    return Slot(name, rows, cols, np.zeros(cols + 1, np.int64), np.zeros(0, np.int64))


@dataclass(frozen=True)
class Signature:
    """A CasADi function backed by an exported C-ABI function: its name and its slots."""

    name: str
    inputs: tuple[Slot, ...]
    outputs: tuple[Slot, ...]


def dense_signature(name: str, inputs, outputs, sparsity=None) -> Signature:
    """The plain view of a function with these input and output specs: every input and dense
    output a column vector of its elements in row-major order, a sparse result (`sparsity`,
    one output) its matrix with the CSC pattern.

    >>> import anvil_llvm as av
    >>> from anvil_llvm.backend.target import Target
    >>> from anvil_llvm.aot.exported import describe
    >>> f = av.NumericalFunction("f", lambda x: x[1:] * x[:-1], (av.Arg(3),))
    >>> J = av.ad.spjacobian(f)
    >>> e = describe(J, "lib", J.lowered(Target.object()))
    >>> s = dense_signature(e.name, e.inputs, e.outputs, e.sparsity)
    >>> s.inputs[0].pattern().tolist(), s.outputs[0].pattern().tolist()
    ([3, 1, 1], [2, 3, 0, 1, 3, 4, 0, 0, 1, 1])
    """
    ins = tuple(Slot(spec.name, size(spec), 1, source=k) for k, spec in enumerate(inputs))
    if sparsity is not None:
        outs = (Slot(outputs[0].name, sparsity.rows, sparsity.cols, sparsity.indptr,
                     sparsity.indices, 0),)
    else:
        outs = tuple(Slot(spec.name, size(spec), 1, source=j) for j, spec in enumerate(outputs))
    return Signature(name, ins, outs)


def signature(e: Exported) -> Signature:
    """The CasADi view of an exported function as it is (docs/export.md)."""
    return dense_signature(e.name, e.inputs, e.outputs, e.sparsity)


def symbols(name: str) -> list[str]:
    """The symbols the CasADi API of the function `name` defines.

    >>> symbols("f")[:3]
    ['f', 'f_n_in', 'f_n_out']
    """
    return [name] + [f"{name}_{s}" for s in ("n_in", "n_out", "sparsity_in", "sparsity_out",
                                              "name_in", "name_out", "work")]


def check(e: Exported, externals: frozenset = frozenset()) -> None:
    """CasADi passes doubles only, and its symbols must not be C library functions (nor any
    other symbol the code calls, `externals`): ValueError naming the function otherwise."""
    taken = sorted(set(symbols(e.name)) & (LIBC | externals))
    if taken:
        raise ValueError(f"casadi: function {e.name!r} would define {', '.join(taken)}, a "
                         "function of the C library; rename it (casadi=True exports it under "
                         "its own name)")
    for spec in e.inputs + e.outputs:
        if np.dtype(spec.dtype) != np.float64:
            raise ValueError(f"casadi: function {e.name!r} has argument {spec.name!r} of dtype "
                             f"{np.dtype(spec.dtype)}; CasADi's API passes float64 only")


def _round64(n: int) -> int:
    return (n + 63) // 64 * 64


def layout(e: Exported) -> tuple[int, int, list[int], int]:
    """(zeros offset, zeros bytes, scratch offsets, total bytes) of `w` after aligning it to
    64: the workspace first, then zeros for NULL inputs, then one scratch area per output."""
    zeros_at = _round64(e.work_bytes)
    zeros = _round64(max((8 * size(s) for s in e.inputs), default=0))
    at, scratch = zeros_at + zeros, []
    for spec in e.outputs:
        scratch.append(at)
        at += _round64(8 * size(spec))
    return zeros_at, zeros, scratch, at


def work_doubles(e: Exported) -> int:
    """The length of `w` in doubles, with 63 bytes to align it."""
    return (layout(e)[3] + 63 + 7) // 8


def _string(text: str) -> tuple[str, int]:
    data = text.encode() + b"\0"
    return "c\"" + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:02X}"
                           for b in data) + "\"", len(data)


def _table(symbol: str, values: np.ndarray, dtype, big_endian: bool, what: str) -> Blob:
    """An integer table as binary data (data.py: millions of entries cost no IR text)."""
    info = np.iinfo(dtype)
    if values.max() > info.max or values.min() < info.min:
        raise ValueError(f"casadi_int: the sparsity of {what} does not fit in {info.bits}-bit "
                         "integers; export with casadi_int='long long'")
    return Blob(symbol, array_bytes(np.asarray(values, dtype), big_endian))


def _sources(slots: tuple[Slot, ...], count: int, what: str) -> list[int]:
    """For each argument of the C-ABI function, the position of the slot that is it."""
    found = {s.source: k for k, s in enumerate(slots) if s.source is not None}
    if sorted(found) != list(range(count)):
        raise ValueError(f"casadi: the {what} slots do not cover the function's arguments")
    return [found[k] for k in range(count)]


def module_ir(e: Exported, sig: Signature | None = None, casadi_int: str = "long long",
              big_endian: bool = False, externals: frozenset = frozenset()
              ) -> tuple[str, list[Blob]]:
    """The LLVM module defining the CasADi API `sig` (default: `signature(e)`) of `e` (it
    declares and calls `e.symbol`; `externals` are the symbols the exported code calls), and
    the sparsity tables it declares."""
    check(e, externals)
    sig = signature(e) if sig is None else sig
    I, itype = _CASADI_INT[casadi_int]
    n, s = sig.name, e.symbol
    n_in, n_out = len(sig.inputs), len(sig.outputs)
    lines, blobs = [], []
    # Sparsity patterns and names.
    for kind, slots in (("in", sig.inputs), ("out", sig.outputs)):
        count, items, labels = len(slots), [], []
        for k, slot in enumerate(slots):
            blob = _table(f"{s}.sp_{kind}{k}", slot.pattern(), itype, big_endian,
                          f"{n}:{slot.name}")
            blobs.append(blob)
            lines.append(blob.declaration())
            items.append(f"ptr @{blob.symbol}")
            literal, length = _string(slot.name)
            lines.append(f"@{n}.name_{kind}{k} = private unnamed_addr constant [{length} x i8] "
                         f"{literal}")
            labels.append(f"ptr @{n}.name_{kind}{k}")
        lines.append(f"@{n}.sp_{kind} = private unnamed_addr constant [{count} x ptr] "
                     f"[{', '.join(items)}]")
        lines.append(f"@{n}.names_{kind} = private unnamed_addr constant [{count} x ptr] "
                     f"[{', '.join(labels)}]")
    params = ", ".join(["ptr"] * (len(e.inputs) + len(e.outputs) + 1))
    lines.append(f"declare i32 @{s}({params})")
    lines.append("declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)")
    for kind, count in (("in", n_in), ("out", n_out)):
        lines.append(f"define {I} @{n}_n_{kind}() nounwind {{\n  ret {I} {count}\n}}")
        for what, table in (("sparsity", f"@{n}.sp_{kind}"), ("name", f"@{n}.names_{kind}")):
            lines.append(
                f"define ptr @{n}_{what}_{kind}({I} %i) nounwind {{\n"
                f"entry:\n  %ok = icmp ult {I} %i, {count}\n"
                "  br i1 %ok, label %yes, label %no\n"
                f"yes:\n  %p = getelementptr [{count} x ptr], ptr {table}, i64 0, {I} %i\n"
                "  %v = load ptr, ptr %p\n  ret ptr %v\nno:\n  ret ptr null\n}")
    # f_work
    sizes = [n_in, n_out, 0, work_doubles(e)]
    body = ["entry:"]
    for k, (pname, value) in enumerate(zip(("sz_arg", "sz_res", "sz_iw", "sz_w"), sizes)):
        body += [f"  %null{k} = icmp eq ptr %{pname}, null",
                 f"  br i1 %null{k}, label %next{k}, label %set{k}",
                 f"set{k}:", f"  store {I} {value}, ptr %{pname}", f"  br label %next{k}",
                 f"next{k}:"]
    body.append("  ret i32 0")
    lines.append(f"define i32 @{n}_work(ptr %sz_arg, ptr %sz_res, ptr %sz_iw, ptr %sz_w) "
                 "nounwind {\n" + "\n".join(body) + "\n}")
    lines.append(_entry(e, sig))
    return "\n\n".join(lines) + "\n", blobs


def _entry(e: Exported, sig: Signature) -> str:
    """`f(arg, res, iw, w, mem)`: the C-ABI function called on CasADi's arrays; NULL inputs
    read zeros, NULL outputs are written to scratch space, all carved out of `w`."""
    zeros_at, zeros, scratch, _ = layout(e)
    body = ["entry:", "  %wi = ptrtoint ptr %w to i64", "  %wneg = sub i64 0, %wi",
            "  %pad = and i64 %wneg, 63", "  %work = getelementptr i8, ptr %w, i64 %pad",
            f"  %zeros = getelementptr i8, ptr %work, i64 {zeros_at}"]
    args, any_null = [], "false"
    for k, slot in enumerate(_sources(sig.inputs, len(e.inputs), "input")):
        body += [f"  %ap{k} = getelementptr ptr, ptr %arg, i64 {slot}",
                 f"  %a{k} = load ptr, ptr %ap{k}", f"  %an{k} = icmp eq ptr %a{k}, null",
                 f"  %in{k} = select i1 %an{k}, ptr %zeros, ptr %a{k}",
                 f"  %any{k} = or i1 {any_null}, %an{k}"]
        any_null = f"%any{k}"
        args.append(f"ptr %in{k}")
    body += [f"  br i1 {any_null}, label %zero, label %call",
             "zero:", f"  call void @llvm.memset.p0.i64(ptr align 64 %zeros, i8 0, i64 {zeros}, "
             "i1 false)", "  br label %call", "call:"]
    for k, slot in enumerate(_sources(sig.outputs, len(e.outputs), "output")):
        body += [f"  %rp{k} = getelementptr ptr, ptr %res, i64 {slot}",
                 f"  %r{k} = load ptr, ptr %rp{k}", f"  %rn{k} = icmp eq ptr %r{k}, null",
                 f"  %scr{k} = getelementptr i8, ptr %work, i64 {scratch[k]}",
                 f"  %out{k} = select i1 %rn{k}, ptr %scr{k}, ptr %r{k}"]
        args.append(f"ptr %out{k}")
    work = "ptr %work" if e.work_bytes else "ptr null"
    body += [f"  %rc = call i32 @{e.symbol}({', '.join(args + [work])})", "  ret i32 %rc"]
    return (f"define i32 @{sig.name}(ptr %arg, ptr %res, ptr %iw, ptr %w, i32 %mem) nounwind "
            "{\n" + "\n".join(body) + "\n}")
