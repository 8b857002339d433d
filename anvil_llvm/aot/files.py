"""Writing the exported files: the output directory checked once, each file replaced atomically
(written to a temporary file in the same directory, then renamed over the old one), so a reader
never sees a half-written library and an interrupted export leaves the previous files intact."""
from __future__ import annotations

import os
import pathlib
import tempfile


def output_directory(out_dir) -> pathlib.Path:
    """`out_dir` as a path, created if missing, or ValueError/TypeError naming `out_dir`.

    >>> import tempfile, pathlib
    >>> d = output_directory(pathlib.Path(tempfile.mkdtemp()) / "build")
    >>> d.is_dir()
    True
    """
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir: expected a path (str or os.PathLike), got "
                        f"{type(out_dir).__name__}")
    path = pathlib.Path(out_dir)
    if str(out_dir) == "":
        raise ValueError("out_dir: expected a directory, got an empty path")
    if path.exists() and not path.is_dir():
        raise ValueError(f"out_dir: {str(path)!r} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"out_dir: cannot create the directory {str(path)!r}: "
                         f"{error.strerror or error}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"out_dir: the directory {str(path)!r} is not writable")
    return path


def write_atomic(path: pathlib.Path, data: bytes | str, mode: int = 0o644) -> pathlib.Path:
    """Write `data` to `path` through a temporary file in the same directory and `os.replace`.

    >>> import tempfile, pathlib
    >>> p = write_atomic(pathlib.Path(tempfile.mkdtemp()) / "a.txt", "hello")
    >>> p.read_text()
    'hello'
    """
    if isinstance(data, str):
        data = data.encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
