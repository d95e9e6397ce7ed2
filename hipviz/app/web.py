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

**Pages built beside the event loop.** Bokeh builds a new session's page
(Panel turning the app's widgets into models: 0.3-1.5 s on an idle machine,
seconds under load) on the server's event loop, so every other page's
slider waited for it. :func:`build_pages_off_loop` makes Bokeh build each
new page in a worker thread (one page at a time); the event loop meanwhile
serves the other pages, taking the interpreter's lock in turns. The new
page's document belongs to nobody else until it is built (no connection,
no session), so nothing else touches it; once built, Panel is told that it
belongs to the event loop's thread, as if it had been built there.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from bokeh.application import Application
from bokeh.application.handlers.handler import Handler
from bokeh.server.contexts import ApplicationContext, BokehSessionContext, _RequestProxy
from bokeh.server.session import ServerSession
from bokeh.util.token import get_token_payload
from tornado import httputil
from tornado.web import OutputTransform

from .procs import PROCESS_KEY

log = logging.getLogger(__name__)

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


#: The page's HTML template: Panel's, with a viewport tag, so a phone lays the
#: page out at its own width (without one a phone's browser lays it out at
#: about 980 px and shrinks it, and the narrow layout never applies).
VIEWPORT_TEMPLATE = (
    "{% block preamble %}{{ super() }}"
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "{% endblock %}"
)


def fit_to_screen(doc: Any) -> None:
    """Serve ``doc`` (a page's Bokeh document) with :data:`VIEWPORT_TEMPLATE`."""
    doc.template = VIEWPORT_TEMPLATE


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


#: The thread that builds new pages: one at a time, so a class opening the
#: page at once takes one thread's share of the interpreter, not all of it.
_PAGE_BUILDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hipviz-page")


class OffLoopApplicationContext(ApplicationContext):
    """Bokeh's application context, building each new session's page in a worker thread.

    :meth:`create_session_if_needed` follows Bokeh's (3.9) with one change:
    the document is initialized (the app's page function run, Panel's models
    built) by :data:`_PAGE_BUILDER`, awaited, instead of on the event loop.
    Bokeh has no hook for that step, so the method is restated here; it is
    derived from Bokeh, Copyright (c) Anaconda, Inc., and Bokeh Contributors,
    BSD-3-Clause (the licence is in Bokeh's distribution, ``bokeh/LICENSE.txt``).
    """

    async def create_session_if_needed(
        self, session_id: Any, request: Any = None, token: str | None = None
    ) -> ServerSession:
        from bokeh.document import Document
        from bokeh.protocol.exceptions import ProtocolError
        from tornado import gen

        if len(session_id) == 0:  # an empty id is "falsey": refuse it, as Bokeh does
            raise ProtocolError("Session ID must not be empty")
        if session_id not in self._sessions and session_id not in self._pending_sessions:
            future = self._pending_sessions[session_id] = gen.Future()
            doc = Document()
            context = BokehSessionContext(
                session_id, self.server_context, doc, logout_url=self._logout_url
            )
            if request is not None:
                payload = get_token_payload(token) if token else {}
                if (
                    "cookies" in payload
                    and "headers" in payload
                    and "Cookie" not in payload["headers"]
                ):
                    payload["headers"]["Cookie"] = "; ".join(
                        f"{k}={v}" for k, v in payload["cookies"].items()
                    )
                context._request = _RequestProxy(
                    request,
                    arguments=payload.get("arguments"),
                    cookies=payload.get("cookies"),
                    headers=payload.get("headers"),
                )
            context._token = token
            doc._session_context = weakref.ref(context)
            try:
                await self._application.on_session_created(context)
            except Exception as exc:
                log.error("Failed to run session creation hooks %r", exc, exc_info=True)
            try:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(
                    _PAGE_BUILDER, self._application.initialize_document, doc
                )
            except BaseException as exc:
                del self._pending_sessions[session_id]
                future.set_exception(exc)
                raise
            _claim_for_this_thread(doc)
            session = ServerSession(session_id, doc, io_loop=self._loop, token=token)
            _PAGE_LOOPS[doc] = asyncio.get_running_loop()  # from now on, see next_tick
            del self._pending_sessions[session_id]
            self._sessions[session_id] = session
            context._set_session(session)
            self._session_contexts[session_id] = context
            future.set_result(session)
        if session_id in self._pending_sessions:  # another request is building it
            return await self._pending_sessions[session_id]
        return self._sessions[session_id]


#: The event loop of each served page's document, once its session exists.
_PAGE_LOOPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def next_tick(doc: Any, callback: Callable[[], Any]) -> None:
    """Run ``callback`` on the event loop of ``doc`` (its lock held); callable from any thread.

    A worker thread's ``doc.add_next_tick_callback`` touches the document
    while its event loop may be changing it: the loop holds a page's
    document while it changes several of its models, and a callback added
    just as that hold ends is lost (Bokeh swaps the held events out while the
    worker appends its own), so the page waits for ever for a hip or a
    measure (1 page in 100-300 when 40 open at once). Here the worker only
    asks the loop, and the loop adds the callback. A document that is not
    (or not yet) a served page's takes the callback directly: a page still
    being built belongs to the thread building it.
    """
    loop = _PAGE_LOOPS.get(doc)
    if loop is None:
        doc.add_next_tick_callback(callback)
    else:
        loop.call_soon_threadsafe(_add_next_tick, doc, callback)


def _add_next_tick(doc: Any, callback: Callable[[], Any]) -> None:
    try:
        doc.add_next_tick_callback(callback)
    except Exception:  # the page closed meanwhile
        log.debug("a worker finished after its page closed")


def _claim_for_this_thread(doc: Any) -> None:
    """Tell Panel the document belongs to this (the event loop's) thread."""
    from panel.io.state import state

    state._thread_id_[doc] = threading.get_ident()


def build_pages_off_loop() -> None:
    """Make Bokeh's server build new pages with :class:`OffLoopApplicationContext`.

    Call before the server is made (it looks the class up when it starts).
    """
    import bokeh.server.tornado

    bokeh.server.tornado.ApplicationContext = OffLoopApplicationContext


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
    "OffLoopApplicationContext",
    "HEADERS",
    "MAX_QUERY_FIELDS",
    "SecurityHeaders",
    "allow_long_links",
    "applications",
    "build_pages_off_loop",
    "content_security_policy",
    "page_query",
    "fit_to_screen",
    "set_process_index",
]
