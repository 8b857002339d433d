"""The names an export makes: the library name, the exported C symbols `<library>_<function>`,
the header macros `<LIBRARY>_<FUNCTION>_...`, the C++ namespaces and the CasADi symbols. Every
one must be a C identifier that is no C or C++ keyword, and no two may collide."""
from __future__ import annotations

from ..ir.signature import check_name

# Reserved in C99/C11 or C++17 beyond what `check_name` rejects already (a parameter or a
# namespace spelled like one of these would not compile).
RESERVED = frozenset(
    "_Bool _Complex _Imaginary _Alignas _Alignof _Atomic _Generic _Noreturn _Static_assert "
    "_Thread_local alignas alignof and and_eq asm bitand bitor bool catch char16_t char32_t "
    "compl concept const_cast constexpr decltype dynamic_cast explicit export false mutable "
    "noexcept not not_eq nullptr or or_eq reinterpret_cast requires static_assert static_cast "
    "thread_local throw true try typeid using wchar_t xor xor_eq main std".split())


def identifier(name, what: str) -> str:
    """`name` if it is a C identifier usable in C and C++ headers, else ValueError/TypeError
    naming `what`.

    >>> identifier("mymodel", "name")
    'mymodel'
    >>> identifier("2fast", "name")
    Traceback (most recent call last):
    ...
    ValueError: name: '2fast' is not a valid C identifier (letters, digits and underscores, not starting with a digit, not a C/C++ keyword)
    """
    check_name(name, what)
    if name in RESERVED:
        raise ValueError(f"{what}: {name!r} is reserved in C or C++; choose another name")
    if name.startswith("__") or (name[0] == "_" and name[1:2].isupper()):
        raise ValueError(f"{what}: {name!r} is reserved for the C implementation (it starts "
                         "with two underscores or an underscore and a capital letter)")
    return name


def parameter(name: str, fallback: str) -> str:
    """An argument's name as a C parameter name: itself, or `fallback` if C or C++ reserves it.

    >>> parameter("x", "in0"), parameter("bool", "in0")
    ('x', 'in0')
    """
    try:
        return identifier(name, "parameter")
    except (TypeError, ValueError):
        return fallback


def macro_prefix(library: str, function: str) -> str:
    """The prefix of a function's macros in the C header.

    >>> macro_prefix("mymodel", "dyn_jac")
    'MYMODEL_DYN_JAC'
    """
    return f"{library}_{function}".upper()


def check_unique(names: list[tuple[str, str]], what: str) -> None:
    """Raise ValueError naming `what` if two (name, owner) pairs share a name.

    >>> check_unique([("a", "f"), ("a", "g")], "functions")
    Traceback (most recent call last):
    ...
    ValueError: functions: the name 'a' is used twice (by f and by g); give the functions different names
    """
    seen: dict[str, str] = {}
    for name, owner in names:
        if name in seen:
            raise ValueError(f"{what}: the name {name!r} is used twice (by {seen[name]} and by "
                             f"{owner}); give the functions different names")
        seen[name] = owner
