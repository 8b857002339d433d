"""Large constant arrays shared by all JIT code of the process.

A function that captures a large array (a data matrix) would otherwise carry a copy of it in
its object code, and so would each of its derivatives, in memory and in the disk cache. Arrays
of at least `Target.shared_constants` bytes are instead referenced by a symbol named after
their content, `anvil.const.<digest>`, which this module defines: one 64-byte aligned copy per
array while any loaded code uses it.
"""
from __future__ import annotations

import threading
import weakref

import numpy as np

from ..ir.uop import Payload
from .loader import define

_lock = threading.Lock()
_arrays: weakref.WeakValueDictionary = weakref.WeakValueDictionary()   # symbol -> aligned copy


def symbol(payload: Payload) -> str:
    """The symbol JIT code reads the array of `payload` through."""
    return f"anvil.const.{payload.digest[:32]}"


def storage(array: np.ndarray) -> np.ndarray:
    """The bytes of a constant as code reads them (bools as one byte each)."""
    return np.ascontiguousarray(array, dtype=np.uint8 if array.dtype == np.bool_ else None)


def provide(payloads: list[Payload]) -> list[np.ndarray]:
    """Define the symbols of `payloads` for code about to be loaded; the arrays they point to,
    which must stay alive as long as that code is loaded."""
    kept = []
    with _lock:
        for payload in payloads:
            name = symbol(payload)
            array = _arrays.get(name)
            if array is None:
                data = storage(payload.array).reshape(-1).view(np.uint8)
                block = np.empty(data.size + 64, np.uint8)
                start = -block.ctypes.data % 64
                array = block[start:start + data.size]
                array[:] = data
                _arrays[name] = array
            # Again each time: the name may point to a copy freed since (its code unloaded).
            define(name, array.ctypes.data)
            kept.append(array)
    return kept
