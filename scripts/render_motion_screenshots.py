#!/usr/bin/env python
"""Screenshots of the app's Motion view in headless Chromium, for the docs.

Serves the app on 127.0.0.1 in this process, opens the dysplastic teaching hip
over-corrected by a PAO (lateral 35°, anterior 20°), opens the Motion view,
presses the "IR 90°" limit button and writes:

* ``app_motion.png``        the side view and the Motion card: the leg at 90°
  flexion turned in just past its limit, the contact lit red on both bones
  (and marked through them), the table before -> after;
* ``app_motion_table.png``  the Motion card alone (sliders, buttons, table).

Usage::

    python scripts/render_motion_screenshots.py            # into /tmp/hipviz-screens
    python scripts/render_motion_screenshots.py --docs     # into docs/images
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_app import app_factory  # noqa: E402
from bench_viewer import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

QUERY = "case=dysplastic&procedure=pao&pao_lateral=35&pao_anterior=20&view={view}"
CARD = "Motion: range of motion"
FIRST_PICTURE = "window.__hipvizTimes && window.__hipvizTimes.firstPicture != null"


def wait(fn, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    import panel as pn  # noqa: TID251
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "hipviz-screens")
    parser.add_argument("--docs", action="store_true", help="write into docs/images")
    parser.add_argument("--view", default="lateral", help="camera preset")
    parser.add_argument("--limit", default="IR 90°", help="the limit button pressed")
    args = parser.parse_args(argv)
    out = Path(__file__).resolve().parents[1] / "docs" / "images" if args.docs else args.out
    out.mkdir(parents=True, exist_ok=True)
    sessions: list = []
    port = free_port()
    server = pn.serve(
        {"/": app_factory(sessions)}, port=port, address="127.0.0.1", threaded=True, show=False
    )
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/?{QUERY.format(view=args.view)}")
            page.wait_for_function(FIRST_PICTURE, timeout=120_000)
            app = sessions[-1]["app"]
            page.get_by_text(CARD).click()
            wait(lambda: app.motion.rom_after is not None and not app.motion.status.object)
            page.get_by_role("button", name=args.limit, exact=True).click()
            wait(lambda: app.motion.contact is not None and app.motion.contact.touching, 10)
            page.wait_for_timeout(2500)  # the animation ends
            # the 3D view and the Motion card (the controls column left out: a smaller file)
            page.screenshot(
                path=str(out / "app_motion.png"),
                clip={"x": 335, "y": 52, "width": 1065, "height": 720},
            )
            page.locator(".card", has_text=CARD).first.screenshot(
                path=str(out / "app_motion_table.png")
            )
            print(out / "app_motion.png", app.motion.angles, app.motion.contact.touching)
            browser.close()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
