"""The project's error types: each names the problem in its message.

Every error the library raises on bad input derives from :class:`CausalVAEError`
(itself a ``ValueError``), so a caller can catch one type and print one clear line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CausalVAEError(ValueError):
    """Base class of the library's input errors."""


class GraphError(CausalVAEError):
    """A graph specification is malformed (cycle, bad table, unknown parent, ...)."""


class UnknownNameError(CausalVAEError):
    """A variable or value name that the graph does not have."""


class UnknownGraphNameError(GraphError, UnknownNameError):
    """An unknown name inside a graph specification (a parent, a value in a CPT, a key)."""


class QuerySyntaxError(CausalVAEError):
    """A query string that does not parse; the message points at the offending character."""

    def __init__(self, message: str, text: str, position: int):
        self.text = text
        self.position = position
        caret = " " * position + "^"
        super().__init__(f"{message} at character {position + 1}:\n  {text}\n  {caret}")


class ZeroProbabilityError(CausalVAEError):
    """Evidence that has probability zero under the (possibly intervened) graph."""


class QueryTooLargeError(CausalVAEError):
    """A query whose exact answer would need more memory or work than its budget allows."""


class QueryStoppedError(CausalVAEError):
    """A query stopped before it finished: past its time limit, or its caller went away."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the nearest valid name, or ``""``."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    if not close:
        lowered = {c.lower(): c for c in choices}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown(
    kind: str, name: str, choices: Iterable[str], where: str = "", error: type[UnknownNameError] = UnknownNameError
) -> UnknownNameError:
    """Build the error for an unknown ``kind`` (variable, value) with a suggestion."""
    choices = list(choices)
    place = f" {where}" if where else ""
    listing = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return error(
        f"unknown {kind} '{name}'{place}{suggest(name, choices)}; valid: {listing}"
    )
