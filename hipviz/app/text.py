"""Text that users, links and files supply, made safe to show in the page.

Every message, file name, label, link value and error the app shows passes
through :func:`inert` on its way into a pane. A shared link or an uploaded
file's name is written by whoever made it, so it must never reach the page as
markup: the app's panes render HTML (``pn.pane.HTML``) or Markdown with raw
HTML allowed (``pn.pane.Markdown``, ``pn.pane.Alert``). :func:`inert` writes
every ASCII punctuation character as a numeric character reference
(``<`` -> ``&#60;``). Both HTML and Markdown (CommonMark) show such a
reference as its character and never read it as syntax, so the same string is
inert in either kind of pane: no tag, no entity, no link, no emphasis, no
heading or list, no automatic link (``http&#58;//``), no maths delimiters;
the page shows the literal characters (``<script>`` reads as ``<script>``).

:func:`clamp` keeps a message one readable line: control characters and line
breaks become spaces, direction overrides (which can make ``gpj.exe`` read
as ``exe.jpg``) are dropped, runs of spaces become one, and text longer than
its limit ends with an ellipsis. This module imports nothing from Panel, so
the app's model (:mod:`hipviz.app.state`) can clamp the values it quotes.
"""

from __future__ import annotations

import re
import string
import unicodedata

#: Longest piece of user-supplied text (a link value, a file name, a labels
#: field) quoted inside a message, characters.
QUOTE_CHARS = 40
#: Longest file name quoted in a message or shown, characters.
NAME_CHARS = 60
#: Longest message shown in the page, characters.
MESSAGE_CHARS = 1000
ELLIPSIS = "…"

#: Characters HTML or Markdown can read as syntax: all of ASCII punctuation.
_MARKUP = frozenset(string.punctuation)
#: Unicode direction controls (embeddings, overrides, isolates, marks).
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SPACES = re.compile(r"\s+")


def one_line(text: object) -> str:
    """``text`` as one line: controls and breaks as spaces, no direction overrides.

    Parameters
    ----------
    text : object
        Anything; ``str(text)`` is used (None gives "").

    Returns
    -------
    str
        No control or line-break characters, no runs of white space, no
        leading or trailing space.
    """
    s = "" if text is None else str(text)
    s = "".join(
        "" if c in _BIDI else " " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in s
    )
    return _SPACES.sub(" ", s).strip()


def clamp(text: object, limit: int = QUOTE_CHARS) -> str:
    """``text`` as one line of at most ``limit`` characters; a cut one ends with '…'.

    Parameters
    ----------
    text : object
        Anything; see :func:`one_line`.
    limit : int
        Most characters returned, the ellipsis included (at least 1).

    Examples
    --------
    >>> clamp("x" * 100, 8)
    'xxxxxxx…'
    >>> clamp("two\\nlines")
    'two lines'
    """
    if limit < 1:
        msg = f"limit must be at least 1, got {limit}"
        raise ValueError(msg)
    s = "" if text is None else str(text)
    # a 20 kB link value is cut before it is cleaned: the cost stays that of the limit
    head = 4 * limit + 16
    cut = len(s) > head
    s = one_line(s[:head])
    return s if len(s) <= limit and not cut else s[: limit - 1] + ELLIPSIS


def byte_amount(n: int, of: int | None = None) -> str:
    """``n`` bytes (of ``of``) in words: "12.0 of 59.0 MB"; under 0.1 MB, "3,000 of 5,000 bytes"."""
    total = n if of is None else of
    if total < 100_000:
        return f"{n:,} bytes" if of is None else f"{n:,} of {of:,} bytes"
    return f"{n / 1e6:.1f} MB" if of is None else f"{n / 1e6:.1f} of {of / 1e6:.1f} MB"


def size_over(size_bytes: int, cap_mb: float) -> str:
    """A file size for a message saying it is over ``cap_mb``: in MB to three
    digits, or in bytes when those would read as the limit itself."""
    shown = f"{min(size_bytes, 10**30) / 1e6:.3g}"  # an announced size can be any integer
    if float(shown) <= cap_mb:  # 5,000,001 bytes is not "5 MB over the 5 MB limit"
        return f"{size_bytes:,} bytes"
    return f"{shown} MB"


def quoted(text: object, limit: int = QUOTE_CHARS) -> str:
    """``text`` clamped to ``limit`` characters, in quotes, for a message: ``'abc…'``."""
    return repr(clamp(text, limit))


def inert(text: object, limit: int = MESSAGE_CHARS) -> str:
    """``text`` as plain text for an HTML or Markdown pane (clamped to ``limit``).

    Parameters
    ----------
    text : object
        A message, file name, label or value, from anywhere.
    limit : int
        Most characters shown; see :func:`clamp`.

    Returns
    -------
    str
        The clamped line with every ASCII punctuation character written as a
        numeric character reference; the page shows the clamped line exactly.

    Examples
    --------
    >>> inert("<b>x</b>")
    '&#60;b&#62;x&#60;&#47;b&#62;'
    >>> import html
    >>> html.unescape(inert("a [link](javascript:alert(1))")) == "a [link](javascript:alert(1))"
    True
    """
    return "".join(f"&#{ord(c)};" if c in _MARKUP else c for c in clamp(text, limit))


def inert_join(parts: object, sep: str = "<br>", limit: int = MESSAGE_CHARS) -> str:
    """Each of ``parts`` made :func:`inert`, joined by the markup ``sep``.

    ``sep`` is trusted markup from the code (a line break), never user text.
    """
    return sep.join(inert(p, limit) for p in parts)


__all__ = [
    "byte_amount",
    "size_over",
    "ELLIPSIS",
    "MESSAGE_CHARS",
    "NAME_CHARS",
    "QUOTE_CHARS",
    "clamp",
    "inert",
    "inert_join",
    "one_line",
    "quoted",
]
