"""Problems found in schedule files, each tied to the place that caused it."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Characters that would break a problem's one line (or drive the terminal), shown escaped:
# control characters, and the separators str.splitlines() also splits at.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True, order=True, slots=True)
class SourceLocation:
    """A 1-based line and column in a file, as editors and compilers print them."""

    path: str
    line: int = 1
    column: int = 1

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


@dataclass(frozen=True, order=True, slots=True)
class Problem:
    """One thing wrong with the input; ``code`` is a stable identifier for machines."""

    location: SourceLocation
    message: str
    code: str = "invalid"

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        if _UNPRINTABLE.search(text):  # a name or value quoted raw, e.g. "schedule 'a\x1d'"
            return _UNPRINTABLE.sub(lambda found: ascii(found[0])[1:-1], text)
        return text


def printable(text: str) -> str:
    """``text`` as UTF-8 can carry it: a lone surrogate (from a JSON escape such as
    "\\ud800" in a definition in Redis) is shown escaped instead of failing the output."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
