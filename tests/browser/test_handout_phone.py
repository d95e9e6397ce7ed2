"""The handout opened from disk in a real browser at phone size, with the network cut.

Every request that is not to ``file://`` is aborted and fails the test. The
3D canvas must draw (pixels that are not the white background), the
Before / After switch and a drag must change the picture, and the console
must stay free of errors.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from hipviz.cli import main

pytest.importorskip("pytest_playwright")

# Skipped by conftest.py where /usr/bin/chromium is absent.
pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def handout_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("handout") / "plan <1>.html"
    argv = ["handout", "--case", "dysplastic", "--subdivisions", "4", "--preset", "pao"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*argv, "--out", str(path)]) == 0
    return path


def pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img.convert("RGB")).astype(int)


@pytest.fixture
def phone(browser, handout_file):
    """The handout on a phone-sized page; ``page.seen`` holds requests and console errors."""
    page = browser.new_page(viewport=PHONE, device_scale_factor=2, has_touch=True)
    seen = {"requests": [], "outside": [], "errors": []}

    def route(r):
        url = r.request.url
        seen["requests"].append(url)
        if url.startswith("file://"):
            r.continue_()
        else:
            seen["outside"].append(url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("requestfailed", lambda r: seen["outside"].append(r.url))
    page.goto(handout_file.as_uri())
    page.wait_for_function("window.hipvizHandout && window.hipvizHandout.meshes > 0")
    page.wait_for_timeout(300)
    page.seen = seen
    yield page
    page.close()


def canvas_png(page) -> bytes:
    page.wait_for_timeout(250)  # the next animation frame has drawn
    return page.locator("#hv-canvas").screenshot()


def test_handout_draws_offline_and_switches(phone):
    before = pixels(canvas_png(phone))
    drawn = np.any(np.abs(before - 255) > 24, axis=2).mean()
    assert drawn > 0.05, f"only {drawn:.1%} of the canvas is drawn"
    phone.click("#hv-after")
    assert phone.locator("#hv-state").inner_text() == "After"
    assert phone.get_attribute("#hv-after", "aria-pressed") == "true"
    after = pixels(canvas_png(phone))
    changed = np.any(np.abs(after - before) > 24, axis=2).mean()
    assert changed > 0.002, f"After changed only {changed:.2%} of the canvas"
    phone.click("#hv-before")
    again = pixels(canvas_png(phone))
    assert np.any(np.abs(again - before) > 24, axis=2).mean() < changed / 4
    assert phone.seen["outside"] == []
    assert all(u.startswith("file://") for u in phone.seen["requests"])
    assert phone.seen["errors"] == []


def test_handout_turns_with_a_drag_and_fits_the_phone(phone):
    before = pixels(canvas_png(phone))
    box = phone.locator("#hv-canvas").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    phone.mouse.move(x, y)
    phone.mouse.down()
    phone.mouse.move(x + 120, y, steps=6)
    phone.mouse.up()
    turned = pixels(canvas_png(phone))
    assert np.any(np.abs(turned - before) > 24, axis=2).mean() > 0.02
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide on a {PHONE['width']} px phone"
    assert phone.seen["outside"] == [] and phone.seen["errors"] == []
