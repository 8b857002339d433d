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
which is CasADi's own compressed column storage, so the nonzeros pass unchanged.
"""
from __future__ import annotations

import numpy as np

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


def symbols(e: Exported) -> list[str]:
    """The symbols the CasADi API of `e` defines."""
    n = e.name
    return [n] + [f"{n}_{s}" for s in ("n_in", "n_out", "sparsity_in", "sparsity_out",
                                        "name_in", "name_out", "work")]


def sparsity(e: Exported, output: int | None, index: int) -> list:
    """CasADi's sparsity pattern of an input (`output` None) or output: {nrow, ncol, 1} when
    dense, else {nrow, ncol, colind[ncol + 1], row[nnz]}.

    >>> import anvil_llvm as av
    >>> from anvil_llvm.backend.target import Target
    >>> from anvil_llvm.export.exported import describe
    >>> f = av.NumericalFunction("f", lambda x: x[1:] * x[:-1], (av.Arg(3),))
    >>> J = describe(av.ad.spjacobian(f), "lib", av.ad.spjacobian(f).lowered(Target.object()))
    >>> sparsity(J, None, 0), sparsity(J, 0, 0)
    ([3, 1, 1], [2, 3, 0, 1, 3, 4, 0, 0, 1, 1])
    """
    if output is not None and e.sparsity is not None:
        s = e.sparsity
        return [s.rows, s.cols, *s.indptr.tolist(), *s.indices.tolist()]
    spec = e.outputs[index] if output is not None else e.inputs[index]
    return [size(spec), 1, 1]


def check(e: Exported, externals: frozenset = frozenset()) -> None:
    """CasADi passes doubles only, and its symbols must not be C library functions (nor any
    other symbol the code calls, `externals`): ValueError naming the function otherwise."""
    taken = sorted(set(symbols(e)) & (LIBC | externals))
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


def _table(values: list, dtype, big_endian: bool) -> tuple[str, int]:
    """An integer table as LLVM bytes (a string literal parses fast, even for millions)."""
    data = np.asarray(values, dtype=np.dtype(dtype).newbyteorder(">" if big_endian else "<"))
    return f'c"\\{data.tobytes().hex(chr(92))}"', data.nbytes


def module_ir(e: Exported, casadi_int: str = "long long", big_endian: bool = False,
              externals: frozenset = frozenset()) -> str:
    """The LLVM module defining the CasADi API of `e` (it declares `e.symbol`); `externals`
    are the symbols the exported code calls."""
    check(e, externals)
    I, itype = _CASADI_INT[casadi_int]
    n, s = e.name, e.symbol
    n_in, n_out = len(e.inputs), len(e.outputs)
    lines = []
    # Sparsity patterns and names.
    for kind, count, out in (("in", n_in, None), ("out", n_out, 0)):
        items = []
        for k in range(count):
            literal, nbytes = _table(sparsity(e, out, k), itype, big_endian)
            lines.append(f"@{n}.sp_{kind}{k} = private unnamed_addr constant "
                         f"[{nbytes} x i8] {literal}, align 8")
            items.append(f"ptr @{n}.sp_{kind}{k}")
        lines.append(f"@{n}.sp_{kind} = private unnamed_addr constant [{count} x ptr] "
                     f"[{', '.join(items)}]")
        specs = e.inputs if kind == "in" else e.outputs
        items = []
        for k, spec in enumerate(specs):
            literal, length = _string(spec.name)
            lines.append(f"@{n}.name_{kind}{k} = private unnamed_addr constant [{length} x i8] "
                         f"{literal}")
            items.append(f"ptr @{n}.name_{kind}{k}")
        lines.append(f"@{n}.names_{kind} = private unnamed_addr constant [{count} x ptr] "
                     f"[{', '.join(items)}]")
    params = ", ".join(["ptr"] * (n_in + n_out + 1))
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
    # f itself
    zeros_at, zeros, scratch, _ = layout(e)
    body = ["entry:", "  %wi = ptrtoint ptr %w to i64", "  %wneg = sub i64 0, %wi",
            "  %pad = and i64 %wneg, 63", "  %work = getelementptr i8, ptr %w, i64 %pad",
            f"  %zeros = getelementptr i8, ptr %work, i64 {zeros_at}"]
    args, any_null = [], "false"
    for k in range(n_in):
        body += [f"  %ap{k} = getelementptr ptr, ptr %arg, i64 {k}",
                 f"  %a{k} = load ptr, ptr %ap{k}", f"  %an{k} = icmp eq ptr %a{k}, null",
                 f"  %in{k} = select i1 %an{k}, ptr %zeros, ptr %a{k}",
                 f"  %any{k} = or i1 {any_null}, %an{k}"]
        any_null = f"%any{k}"
        args.append(f"ptr %in{k}")
    body += [f"  br i1 {any_null}, label %zero, label %call",
             "zero:", f"  call void @llvm.memset.p0.i64(ptr align 64 %zeros, i8 0, i64 {zeros}, "
             "i1 false)", "  br label %call", "call:"]
    for k in range(n_out):
        body += [f"  %rp{k} = getelementptr ptr, ptr %res, i64 {k}",
                 f"  %r{k} = load ptr, ptr %rp{k}", f"  %rn{k} = icmp eq ptr %r{k}, null",
                 f"  %scr{k} = getelementptr i8, ptr %work, i64 {scratch[k]}",
                 f"  %out{k} = select i1 %rn{k}, ptr %scr{k}, ptr %r{k}"]
        args.append(f"ptr %out{k}")
    work = "ptr %work" if e.work_bytes else "ptr null"
    body += [f"  %rc = call i32 @{s}({', '.join(args + [work])})", "  ret i32 %rc"]
    lines.append(f"define i32 @{n}(ptr %arg, ptr %res, ptr %iw, ptr %w, i32 %mem) nounwind {{\n"
                 + "\n".join(body) + "\n}")
    return "\n\n".join(lines) + "\n"
