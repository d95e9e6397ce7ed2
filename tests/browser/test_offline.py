"""The served app makes no request to any host but its own server, in every mode.

``hipviz serve`` itself (its own process) is opened in Plan, Learn and
Explain mode and with a load chosen. The page's security policy is bypassed,
so a request the policy would have stopped still shows here: every request
to a host other than the server's is recorded and aborted, and any fails the
test. The requests each mode makes are recorded too (all to the server).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytest.importorskip("pytest_playwright")

# Skipped by conftest.py where /usr/bin/chromium is absent.
pytestmark = pytest.mark.browser

FIRST_PICTURE = "window.__hipvizTimes && window.__hipvizTimes.firstPicture != null"
#: (what, link): each mode, and a load chosen.
PAGES = [
    ("plan", "case=dysplastic&procedure=pao&pao_lateral=20"),
    ("learn", "case=dysplastic&mode=student"),
    ("explain", "case=dysplastic&procedure=pao&pao_lateral=20&mode=explain"),
    ("load", "case=dysplastic&procedure=pao&pao_lateral=20&load=one-leg-stance"),
]


@pytest.mark.parametrize(("what", "query"), PAGES, ids=[p[0] for p in PAGES])
def test_every_request_goes_to_the_server(browser, hipviz_serve, what, query):
    server = urlsplit(hipviz_serve).netloc
    context = browser.new_context(bypass_csp=True, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    seen: dict[str, list[str]] = {"requests": [], "outside": []}

    def route(r):
        url = r.request.url
        seen["requests"].append(url)
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc == server:
            r.continue_()
        else:
            seen["outside"].append(url)
            r.abort()

    def socket(ws):
        seen["requests"].append(ws.url)
        if urlsplit(ws.url).netloc == server:
            ws.connect_to_server()
        else:
            seen["outside"].append(ws.url)
            ws.close()

    try:
        context.route("**/*", route)
        context.route_web_socket("**/*", socket)
        page.goto(hipviz_serve + "?" + query)
        page.wait_for_function(FIRST_PICTURE, timeout=60_000)
        if what == "explain":  # the steps play: let them draw what they fetch
            page.wait_for_timeout(3000)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(500)
        made = list(seen["outside"])
        # the watch itself: a request elsewhere (a documentation address) is caught
        probe = "http://203.0.113.7/probe.woff2"
        page.evaluate(f"fetch({probe!r}).catch(() => null)")
        page.wait_for_timeout(300)
        assert probe in seen["outside"], "the watch did not see an outside request"
        seen["outside"] = made
        seen["requests"].remove(probe)
    finally:
        context.close()
    paths = sorted({urlsplit(u).path for u in seen["requests"]})
    print(f"{what}: {len(seen['requests'])} requests to {server}: {' '.join(paths)}")
    assert seen["outside"] == [], seen["outside"]
    assert any(urlsplit(u).scheme in ("ws", "wss") for u in seen["requests"])  # the page's socket
    assert len(seen["requests"]) > 3
