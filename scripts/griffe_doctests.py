"""A griffe extension for the documentation site (mkdocs.yml): the interactive examples (>>>) of
docstrings become fenced `pycon` code blocks, so that Markdown shows them as code instead of
nested quotes."""
from __future__ import annotations

import griffe


def fence_sessions(text: str) -> str:
    r"""`text` with each run of lines from a `>>>` line to the next blank line fenced.

    >>> fence_sessions("Adds.\n>>> 1 + 1\n2\n\nDone.").splitlines()
    ['Adds.', '```pycon', '>>> 1 + 1', '2', '```', '', 'Done.']
    """
    out, inside = [], False
    for line in text.splitlines():
        if not inside and line.lstrip().startswith(">>>"):
            out.append("```pycon")
            inside = True
        elif inside and not line.strip():
            out.append("```")
            inside = False
        out.append(line)
    if inside:
        out.append("```")
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fences the examples of every docstring griffe loads."""

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if not obj.is_alias and obj.docstring is not None:
            obj.docstring.value = fence_sessions(obj.docstring.value)
