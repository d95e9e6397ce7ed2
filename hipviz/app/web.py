"""What ``hipviz serve`` adds to Bokeh's web server: security headers and long links.

**Headers.** The page runs only what the hipviz server sent it: a
Content-Security-Policy forbids scripts, styles, pictures, fonts and
connections from any other host, frames (in and of the page), plugins, a
``<base>`` elsewhere and forms posting elsewhere. It cannot be stricter than
Bokeh and Panel allow: their page writes its document and styles inline
(``'unsafe-inline'``), Panel builds some functions from text
(``'unsafe-eval'``), loads its components' modules from ``blob:`` URLs
(fetched, then run) and draws its icons as ``data:`` images. Nothing else is
allowed: a session that loads, moves, cuts and uploads reports no violation
(``tests/browser/test_injection.py``). The escaping of :mod:`hipviz.app.text`
is the first defence against injected script; this policy is the second.
The headers are added by a Tornado output transform
(``pn.serve(..., transforms=[SecurityHeaders])``), so the page, its scripts
and styles, and error pages all carry them.

**Long links.** A shared link is read by :meth:`hipviz.app.state.Plan.apply_query`,
which reports what it leaves out. Two limits below it would turn a long link
into a blank page instead: Tornado refuses a query of more than 1000 fields
(400, empty page), and Bokeh copies the query's fields into the session token
that the page sends back when it opens its websocket, so a link of some 40 kB
makes a token too large to open it (a dead page). :func:`allow_long_links`
lifts the first to what fits in a request's header (64 kB; Tornado refuses
longer requests itself), and :func:`applications` keeps the query out of the
token (the app reads the link from the page's address, not from the token).
Panel's own reading of the address (``pn.state.location``) is not used: it
converts each value (a value of more than 4300 digits fails the page with an
internal error; ``[...]`` and ``{...}`` values are evaluated as literals), so
the pages are built without it and :func:`page_query` hands the app the
query as the browser sent it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from bokeh.application import Application
from bokeh.application.handlers.handler import Handler
from tornado import httputil
from tornado.web import OutputTransform

from .procs import PROCESS_KEY

#: The policy's directives but ``connect-src``, which names the page's own
#: host for its websocket (see :func:`content_security_policy`).
DIRECTIVES = (
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval' blob:",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self'",
    "worker-src 'none'",
    "media-src 'none'",
    "manifest-src 'self'",
    "frame-src 'none'",
    "child-src 'none'",
    "frame-ancestors 'none'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
)

#: A Host header that can only name a host (and port): no spaces, quotes or ';'.
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


def content_security_policy(host: str | None = None) -> str:
    """The Content-Security-Policy of a page served to ``host``.

    Parameters
    ----------
    host : str, optional
        The request's Host header (``"127.0.0.1:5006"``). When it is a plain
        host name or address (and port), the websocket back to it is allowed
        by name as well as by ``'self'`` (which older browsers do not apply to
        ``ws:``); otherwise only ``'self'``.

    Returns
    -------
    str
        ``directive value; directive value; ...``
    """
    connect = "connect-src 'self' blob:"  # Panel's module loader fetches blob: modules
    if host and _HOST.fullmatch(host):
        connect += f" ws://{host} wss://{host}"
    return "; ".join((*DIRECTIVES, connect))


#: Headers every response carries (the CSP is added per request).
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SecurityHeaders(OutputTransform):
    """Adds :data:`HEADERS` and the Content-Security-Policy to a Tornado response."""

    def __init__(self, request: httputil.HTTPServerRequest) -> None:
        super().__init__(request)
        self._host = request.headers.get("Host")

    def transform_first_chunk(
        self,
        status_code: int,
        headers: httputil.HTTPHeaders,
        chunk: bytes,
        finishing: bool,
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        for name, value in HEADERS.items():
            headers[name] = value
        headers["Content-Security-Policy"] = content_security_policy(self._host)
        return status_code, headers, chunk


#: Query fields Tornado parses in one request: more than a 64 kB request
#: header can hold ("a&a&..."), so the header size is the only limit.
MAX_QUERY_FIELDS = 33_000


def allow_long_links(max_fields: int = MAX_QUERY_FIELDS) -> None:
    """Let Tornado parse queries of up to ``max_fields`` fields (its default: 1000).

    Tornado's setting is global to the process; it also bounds the fields of
    form bodies, which hipviz does not accept. Without the setting (Tornado
    before 6.5.8) there is no field limit to lift.
    """
    config_cls = getattr(httputil, "ParseBodyConfig", None)
    urlencoded_cls = getattr(httputil, "ParseUrlEncodedConfig", None)
    if config_cls is None or urlencoded_cls is None:
        return
    httputil.set_parse_body_config(
        config_cls(urlencoded=urlencoded_cls(max_arguments=int(max_fields)))
    )


class _NoQueryInToken(Handler):
    """Keeps a page's query out of its Bokeh session token (see the module notes).

    Bokeh adds what an application's handlers return from ``process_request``
    to the token's payload, replacing its copy of the query's fields; the
    session still has the page request's address (:func:`page_query`).
    """

    def modify_document(self, doc: Any) -> None:
        """Nothing to add to the page."""

    def process_request(self, request: httputil.HTTPServerRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {"arguments": {}}
        if _PROCESS[0] is not None:  # which of several processes holds the session
            payload[PROCESS_KEY] = _PROCESS[0]
        return payload


#: This process's index among ``hipviz serve --num-procs`` processes (None: the only one).
_PROCESS: list[int | None] = [None]


def set_process_index(index: int | None) -> None:
    """Name this process in the tokens of the sessions it builds (see :mod:`hipviz.app.procs`)."""
    _PROCESS[0] = index


def applications(pages: Mapping[str, Callable[[], Any]], *, title: str) -> dict[str, Application]:
    """Panel applications for ``pn.serve`` whose session tokens carry no query.

    Parameters
    ----------
    pages : mapping of str to callable
        URL path (``"/"``) to a function returning the page of one session.
    title : str
        The pages' HTML title.
    """
    from panel.io.application import build_applications

    # location=False: no Panel Location model (the app keeps the address bar itself)
    apps = build_applications(dict(pages), title=title, location=False)
    for app in apps.values():
        app.add(_NoQueryInToken())
    return apps


def page_query() -> str | None:
    """The query of the page the current session serves (the text after ``?``).

    Returns
    -------
    str or None
        As the browser sent it (percent-encoded, not parsed); None outside a
        served session (a notebook, a test building the app directly).
    """
    import panel as pn

    doc = pn.state.curdoc
    context = getattr(doc, "session_context", None)
    request = getattr(context, "request", None)
    uri = getattr(request, "uri", None)
    if not isinstance(uri, str):
        return None
    return urlsplit(uri).query


__all__ = [
    "DIRECTIVES",
    "HEADERS",
    "MAX_QUERY_FIELDS",
    "SecurityHeaders",
    "allow_long_links",
    "applications",
    "content_security_policy",
    "page_query",
    "set_process_index",
]
