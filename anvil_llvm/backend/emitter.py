"""The LLVM IR text emitter: fresh value names, instructions, declarations and integer folding.

Text is emitted directly (not through llvmlite's IRBuilder, which measured 25-34x slower per
instruction; docs/backend.md, "Emitting IR as text").
"""
from __future__ import annotations

from . import vecmath


class ModuleParts:
    """Module-level text shared by the functions of one module: declarations, and the vector
    math variants with their call-site attribute groups (of the libmvec ISAs `vector_isas`
    the target's code may call: `Target.vector_isas`)."""

    def __init__(self, vector_isas: tuple[str, ...] = ()):
        self.vector_isas = tuple(vector_isas)
        self.declarations: dict[str, str] = {}
        self.attributes: dict[str, int] = {}     # attribute text -> group number
        self.used: list[str] = []                # vector functions kept alive for the vectoriser
        self.metadata: list[str] = []             # node texts, numbered in order

    def define(self, name: str, text: str) -> None:
        """A helper function the module defines once (kept with the declarations)."""
        self.declarations.setdefault(name, text)

    def attribute(self, text: str) -> str:
        number = self.attributes.setdefault(text, len(self.attributes))
        return f"#{number}"

    def vector_attribute(self, scalar: str) -> str:
        """The VFABI attribute for calls of `scalar`, declaring its libmvec variants (or '')."""
        found = vecmath.variants(scalar, self.vector_isas) if self.vector_isas else []
        if not found:
            return ""
        for _, name in found:
            if name not in self.declarations:
                ty, arity = vecmath.vector_type(name)
                self.declarations[name] = f"declare {ty} @{name}({', '.join([ty] * arity)})"
                self.used.append(name)
        mapping = ",".join(m for m, _ in found)
        return self.attribute(f'"vector-function-abi-variant"="{mapping}"')

    def node(self, text: str) -> str:
        """A new metadata node of `text` (where `{self}` stands for its own number)."""
        name = f"!{len(self.metadata)}"
        self.metadata.append(text.replace("{self}", name))
        return name

    def text(self) -> str:
        lines = list(self.declarations.values())
        if self.used:
            # Without this, GlobalDCE deletes the unused declarations before the vectoriser runs.
            items = ", ".join(f"ptr @{n}" for n in self.used)
            lines.append(f"@llvm.compiler.used = appending global [{len(self.used)} x ptr] "
                         f"[{items}], section \"llvm.metadata\"")
        lines += [f"attributes #{n} = {{ {text} }}" for text, n in self.attributes.items()]
        lines += [f"!{n} = {text}" for n, text in enumerate(self.metadata)]
        return "\n".join(lines)


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _unsigned(text: str) -> int:
    """An i64 literal's bits read as unsigned, as udiv and urem read their operands."""
    return int(text) & ((1 << 64) - 1)


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


class Emitter:
    """Collects the instructions of one LLVM function and the module-level declarations it needs.

    >>> e = Emitter()
    >>> e.add_i("2", "3"), e.mul_i("%i", "1")
    ('5', '%i')
    """

    def __init__(self, parts: ModuleParts | None = None, prefix: str = "t"):
        self.lines: list[str] = []
        self.allocas: list[str] = []   # hoisted to the entry block so mem2reg promotes them
        self.parts = ModuleParts() if parts is None else parts
        self._prefix = prefix
        self._count = 0
        self._labels = 0
        self.current = "entry"         # the block instructions are being added to
        self.spans: dict[str, tuple[int, int]] = {}   # i64 values known to lie in [lo, hi]
        self.offsets: dict[str, tuple[str, int]] = {}  # i64 values that are `base + literal`

    def fresh(self, hint: str = "") -> str:
        self._count += 1
        return f"%{self._prefix}{hint}{self._count}"

    def label(self, hint: str) -> str:
        self._labels += 1
        return f"{hint}{self._labels}"

    def line(self, text: str) -> None:
        self.lines.append("  " + text)

    def block(self, label: str) -> None:
        self.lines.append(f"{label}:")
        self.current = label

    def op(self, text: str) -> str:
        """Emit `%v = <text>` and return `%v`."""
        name = self.fresh()
        self.lines.append(f"  {name} = {text}")
        return name

    def alloca(self, ty: str) -> str:
        name = self.fresh("a")
        self.allocas.append(f"  {name} = alloca {ty}")
        return name

    def body(self) -> str:
        return "\n".join(self.allocas + self.lines)

    def declare(self, name: str, ret: str, params: list[str], attrs: str = "") -> None:
        if name not in self.parts.declarations:
            self.parts.declarations[name] = (f"declare {ret} @{name}({', '.join(params)})"
                                             f"{' ' + attrs if attrs else ''}")

    def call(self, ret: str, fname: str, args: list[tuple[str, str]], pure: bool = False) -> str:
        """Call `fname` (declared on first use); `pure` marks a libm function free of effects."""
        attrs = "nounwind willreturn memory(none)" if pure else ""
        self.declare(fname, ret, [t for t, _ in args], attrs)
        text = f"call {ret} @{fname}({', '.join(f'{t} {v}' for t, v in args)})"
        if pure or fname.startswith("llvm."):
            vector = self.parts.vector_attribute(fname)
            text += f" {vector}" if vector else ""
        if ret == "void":
            self.line(text)
            return ""
        return self.op(text)

    # ---- i64 index arithmetic, folded when the operands are literals or their spans decide ---
    def span(self, a: str) -> tuple[int, int] | None:
        """The interval [lo, hi] an i64 value is known to lie in (a loop counter's range and
        what is derived from it), or None."""
        return (int(a), int(a)) if _is_int(a) else self.spans.get(a)

    def _spanned(self, text: str, span: tuple[int, int] | None) -> str:
        name = self.op(text)
        if span is not None:
            self.spans[name] = span
        return name

    def add_i(self, a: str, b: str) -> str:
        if _is_int(a) and _is_int(b):
            return str(int(a) + int(b))
        if a == "0":
            return b
        if b == "0":
            return a
        sa, sb = self.span(a), self.span(b)
        span = (sa[0] + sb[0], sa[1] + sb[1]) if sa and sb else None
        name = self._spanned(f"add nsw i64 {a}, {b}", span)
        if _is_int(a) or _is_int(b):
            value, literal = (b, a) if _is_int(a) else (a, b)
            base, offset = self.offset_of(value)
            self.offsets[name] = (base, offset + int(literal))
        return name

    def offset_of(self, a: str) -> tuple[str, int]:
        """`a` as `(base, offset)` with `a == base + offset`, following additions of literals."""
        return self.offsets.get(a, (a, 0))

    def mul_i(self, a: str, b: str) -> str:
        if _is_int(a) and _is_int(b):
            return str(int(a) * int(b))
        if a == "0" or b == "0":
            return "0"
        if a == "1":
            return b
        if b == "1":
            return a
        sa, sb = self.span(a), self.span(b)
        span = None
        if sa and sb:
            corners = [x * y for x in sa for y in sb]
            span = (min(corners), max(corners))
        return self._spanned(f"mul nsw i64 {a}, {b}", span)

    def div_i(self, a: str, n: int) -> str:
        if _is_int(a):
            return str(_signed(_unsigned(a) // n))        # as `udiv` computes it
        if n == 1:
            return a
        sa = self.span(a)
        if sa and 0 <= sa[0] and sa[1] < n:
            return "0"
        return self._spanned(f"udiv i64 {a}, {n}",
                             (sa[0] // n, sa[1] // n) if sa and sa[0] >= 0 else None)

    def rem_i(self, a: str, n: int) -> str:
        if _is_int(a):
            return str(_unsigned(a) % n)                  # as `urem` computes it
        if n == 1:
            return "0"
        sa = self.span(a)
        if sa and 0 <= sa[0] and sa[1] < n:
            return a
        return self._spanned(f"urem i64 {a}, {n}", (0, n - 1))

    def in_range(self, a: str, n: int) -> str:
        """i1: 0 <= a < n (one unsigned compare), folded when a's span decides it."""
        sa = self.span(a)
        if sa and 0 <= sa[0] and sa[1] < n:
            return "true"
        if sa and (sa[1] < 0 or sa[0] >= n):
            return "false"
        return self.op(f"icmp ult i64 {a}, {n}")

    def less_i(self, a: str, n: int) -> str:
        """i1: a < n (signed), folded when a's span decides it."""
        sa = self.span(a)
        if sa and (sa[1] < n or sa[0] >= n):
            return "true" if sa[1] < n else "false"
        return self.op(f"icmp slt i64 {a}, {n}")

    def clamp_i(self, a: str, n: int) -> str:
        """a clamped into [0, n - 1], so that a load at a masked-off position stays in bounds."""
        if _is_int(a):
            return str(min(max(int(a), 0), n - 1))
        sa = self.span(a)
        if sa and 0 <= sa[0] and sa[1] < n:
            return a
        low = self.call("i64", "llvm.smax.i64", [("i64", a), ("i64", "0")])
        return self.call("i64", "llvm.smin.i64", [("i64", low), ("i64", str(n - 1))])

    def flatten(self, dims, shape) -> str:
        """The row-major offset of `dims` in `shape`."""
        flat, stride = "0", 1
        for d, n in zip(reversed(tuple(dims)), reversed(tuple(shape))):
            if n != 1:
                flat = self.add_i(flat, self.mul_i(d, str(stride)))
            stride *= n
        return flat
