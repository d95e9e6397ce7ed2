"""Learn mode's labels: none overlaps another or covers the point another one names.

The labels are HTML over the 3D view; the view spreads them apart (and joins
a moved label to its point by a leader line). At each standard view, on a
desktop and a phone screen, the labels' boxes as drawn must not intersect, and
no box may cover a label's anchor (where an angle line ends, a landmark).
"""

from __future__ import annotations

import itertools

import pytest

pytest.importorskip("panel")
pytest.importorskip("pytest_playwright")

from test_app import FIRST_PICTURE, on_server, wait_for  # noqa: E402

pytestmark = [pytest.mark.browser]

VIEWS = ("Front", "Side", "Top", "False profile")
SCREENS = {
    "desktop": {"viewport": {"width": 1400, "height": 900}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}


def build_app() -> dict:
    from hipviz.app.main import create_app

    return {"app": create_app()}


@pytest.fixture(scope="module")
def served(serve_with):
    return serve_with(build_app)


def label_boxes(page) -> list[dict]:
    """Each shown label's box and its anchor, in page pixels."""
    return page.evaluate(
        """() => {
        const out = []
        const visit = (root) => {
          for (const el of root.querySelectorAll("*")) {
            if (el.shadowRoot) visit(el.shadowRoot)
          }
          for (const scene of root.querySelectorAll(".hipviz-scene")) {
            const origin = scene.getBoundingClientRect()
            for (const div of scene.querySelectorAll(".hv-label")) {
              if (div.style.display === "none" || !div.dataset.anchor) continue
              const r = div.getBoundingClientRect()
              const [ax, ay] = div.dataset.anchor.split(",").map(Number)
              out.push({text: div.textContent, x: r.x, y: r.y, w: r.width, h: r.height,
                        ax: origin.x + ax, ay: origin.y + ay})
            }
          }
        }
        visit(document)
        return out
      }"""
    )


def _intersect(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and (a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])
    )


def _covers(box: dict, x: float, y: float) -> bool:
    return box["x"] < x < box["x"] + box["w"] and box["y"] < y < box["y"] + box["h"]


@pytest.mark.parametrize("screen", list(SCREENS))
def test_learn_labels_do_not_overlap_at_the_standard_views(browser, served, screen):
    context = browser.new_context(**SCREENS[screen])
    try:
        page = context.new_page()
        n = len(served.sessions)
        page.goto(served.url + "?case=dysplastic&procedure=pao&pao_lateral=15&mode=student")
        page.wait_for_function(FIRST_PICTURE, timeout=60_000)
        session = served.sessions[n]
        app = session["app"]
        wait_for(lambda: not on_server(session, lambda: app._loading), 30, "the hip")
        wait_for(lambda: len(label_boxes(page)) >= 6, 20, "the labels")
        for view in VIEWS:
            page.get_by_role("button", name=view, exact=True).click()
            page.wait_for_timeout(600)  # the camera's move and the next frame
            boxes = label_boxes(page)
            assert len(boxes) >= 4, f"{screen}, {view}: {len(boxes)} labels shown"
            for a, b in itertools.combinations(boxes, 2):
                assert not _intersect(a, b), f"{screen}, {view}: {a['text']!r} over {b['text']!r}"
            for box, other in itertools.permutations(boxes, 2):
                assert not _covers(box, other["ax"], other["ay"]), (
                    f"{screen}, {view}: {box['text']!r} hides the point of {other['text']!r}"
                )
    finally:
        context.close()
