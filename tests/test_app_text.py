"""Text from users, links and files shown as text: hipviz.app.text.

What the page does with a string is checked with the renderers the app's
panes use: the HTML pane sets it as HTML, the Markdown and Alert panes run
it through Panel's Markdown renderer (raw HTML allowed) first.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser

import pytest

from hipviz.app.text import (
    ELLIPSIS,
    MESSAGE_CHARS,
    QUOTE_CHARS,
    clamp,
    inert,
    inert_join,
    one_line,
    quoted,
)

#: Markup a link, a file name or a file's content could carry.
CORPUS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    '<iframe srcdoc="<script>alert(1)</script>">',
    "javascript:alert(1)",
    "[x](javascript:alert(1))",
    "![x](javascript:alert(1))",
    "<style>body{display:none}</style>",
    "<b>bold</b>",
    "<a href='javascript:alert(1)'>x</a>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",  # entities must not decode into markup
    "http://example.com www.example.com a@example.com",  # no automatic links
    "# heading",
    "1. a list",
    "- a list",
    "> a quote",
    "**bold** _em_ ~~gone~~ `code`",
    "$$x^2$$ $y$",
    ":smile: (c) -- 'quotes'",
    "a | b\n--|--\nc | d",
    "    indented code",
    "line one\nline two\r\nline three",
]


class Parsed(HTMLParser):
    """Start tags, attributes and text of an HTML fragment (character references decoded)."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text = ""
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data):
        self.text += data


def markdown_html(text: str, pane: str = "Markdown") -> str:
    """The HTML a Panel Markdown (or Alert) pane sends the browser for ``text``."""
    pn = pytest.importorskip("panel")
    model = getattr(pn.pane, pane)(text).get_root()
    return html.unescape(model.text)  # Panel escapes the HTML for transport


@pytest.mark.parametrize("evil", CORPUS)
def test_inert_text_is_no_html(evil):
    shown = Parsed(inert(evil))
    assert shown.tags == [] and shown.attrs == []
    assert shown.text == clamp(evil, MESSAGE_CHARS)


@pytest.mark.parametrize("pane", ["Markdown", "Alert"])
@pytest.mark.parametrize("evil", CORPUS)
def test_inert_text_is_no_markdown(evil, pane):
    rendered = Parsed(markdown_html(inert(evil), pane))
    assert rendered.tags == ["p"], (evil, rendered.tags)
    assert rendered.attrs == []
    assert rendered.text.strip() == clamp(evil, MESSAGE_CHARS)


@pytest.mark.parametrize(
    "evil",
    [
        *(s for s in CORPUS if s.startswith("<")),
        "[x](https://example.com)",  # (markdown-it itself drops javascript: links)
        "![x](x.png)",
        "http://example.com",
        "**bold**",
        "# heading",
    ],
)
def test_the_same_text_unescaped_is_markup(evil):
    """The checks above can fail: raw, these strings do render as markup or a link."""
    raw = Parsed(markdown_html(evil))
    assert raw.tags != ["p"] or raw.attrs or raw.text.strip() != evil


def test_clamp_keeps_one_short_line():
    assert clamp("x" * 20_000) == "x" * (QUOTE_CHARS - 1) + ELLIPSIS
    assert len(clamp("y" * 20_000, 8)) == 8
    assert clamp("short") == "short"
    assert clamp("a\nb\r\nc\td  e") == "a b c d e"
    assert clamp("  padded  ") == "padded"
    assert clamp(None) == ""
    assert clamp(12.5) == "12.5"
    assert clamp("x" * QUOTE_CHARS) == "x" * QUOTE_CHARS  # exactly at the limit: whole
    with pytest.raises(ValueError, match="limit must be at least 1"):
        clamp("x", 0)


def test_one_line_drops_direction_overrides_and_controls():
    # U+202E would show "gpj.exe" as "exe.jpg"
    assert one_line("photo\u202egpj.exe") == "photogpj.exe"
    assert one_line("a\x00b\x1bc\u2028d") == "a b c d"
    assert one_line("ünïcödé ✓") == "ünïcödé ✓"


def test_inert_clamps_messages():
    shown = inert("<" * 5000)
    assert Parsed(shown).text == "<" * (MESSAGE_CHARS - 1) + ELLIPSIS
    assert Parsed(inert("<b>x</b>" * 10, 12)).text == "<b>x</b><b>" + ELLIPSIS


def test_quoted_quotes_a_clamped_value():
    assert quoted("<b>x</b>") == "'<b>x</b>'"
    assert quoted("z" * 500) == repr("z" * (QUOTE_CHARS - 1) + ELLIPSIS)


def test_inert_join_keeps_only_its_separator_as_markup():
    joined = inert_join(["<b>one</b>", "two & three"])
    parsed = Parsed(joined)
    assert parsed.tags == ["br"]
    assert parsed.text == "<b>one</b>two & three"
