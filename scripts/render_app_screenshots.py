#!/usr/bin/env python
"""Screenshots of the app in headless Chromium, for the docs and for review.

Serves the app on 127.0.0.1 in this process, opens each plan by its URL in
Debian's ``/usr/bin/chromium`` (software WebGL) and writes PNGs:

* ``app_default.png``  the page as it opens;
* ``app_pao.png``      the dysplastic teaching hip after a PAO (lateral 20°,
  anterior 5°, medial 3 mm), measures before → after;
* ``app_student.png``  Learn mode: landmarks labelled, side view;
* ``app_explain.png``  Explain mode at "turning the socket", after the animation;
* ``app_pressure.png`` a 10° lateral turn under one-leg stance (70 kg), side
  view, the femur hidden, no angles: pressure colours on the socket, the load
  arrow, the colour bar and the pressure rows;
* ``app_explain_pressure.png`` Explain mode at "where the weight presses";
* ``app_side_by_side.png`` Explain mode, before and after side by side, at
  "turning the socket".

Usage::

    python scripts/render_app_screenshots.py            # into /tmp/hipviz-screens
    python scripts/render_app_screenshots.py --docs     # the docs' four into docs/images
    python scripts/render_app_screenshots.py --only app_side_by_side
"""

from __future__ import annotations

import argparse
import re
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_viewer import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

PAO = "case=dysplastic&procedure=pao&pao_lateral=20&pao_anterior=5&pao_medial=3"
SHOTS = {
    "app_default": ("", []),
    "app_pao": (PAO, []),
    "app_student": ("case=dysplastic&mode=student&view=false_profile", []),
    "app_explain": (f"{PAO}&mode=explain", ["Next"] * 5),
    "app_pressure": (
        "case=dysplastic&procedure=pao&pao_lateral=10&load=one-leg-stance&view=lateral",
        ["check:See the socket", "uncheck:Angles"],
    ),
    "app_explain_pressure": (f"{PAO}&load=one-leg-stance&mode=explain", ["Next"] * 6),
    "app_side_by_side": (
        f"{PAO}&mode=explain",
        ["check:Before and after side by side"] + ["Next"] * 5,
    ),
}
DOCS = ("app_pao", "app_explain", "app_pressure", "app_explain_pressure")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "hipviz-screens")
    parser.add_argument("--docs", action="store_true", help="write the README's into docs/images")
    parser.add_argument("--only", nargs="+", choices=sorted(SHOTS), help="these shots only")
    args = parser.parse_args(argv)
    shots = {k: v for k, v in SHOTS.items() if not args.only or k in args.only}
    import panel as pn
    from playwright.sync_api import sync_playwright

    from hipviz.app.main import create_app

    port = free_port()
    server = pn.serve({"/": create_app}, port=port, address="127.0.0.1", threaded=True, show=False)
    time.sleep(2)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    docs = Path(__file__).resolve().parents[1] / "docs" / "images"
    try:
        with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
            browser = p.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1500, "height": 900},
            )
            for name, (query, clicks) in shots.items():
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/?{query}")
                page.wait_for_function(
                    "window.__hipvizTimes && window.__hipvizTimes.firstPicture != null",
                    timeout=60_000,
                )
                page.wait_for_timeout(1500)
                for label in clicks:
                    if label.startswith(("check:", "uncheck:")):  # by the text beside it
                        action, text = label.split(":", 1)
                        box = page.locator(f"input[type=checkbox]:has(+ :text('{text}'))").first
                        box.check() if action == "check" else box.uncheck()
                    else:
                        page.get_by_role("button", name=re.compile(label)).first.click()
                    page.wait_for_timeout(600)
                page.wait_for_timeout(2500)
                path = (docs if args.docs and name in DOCS else out) / f"{name}.png"
                page.screenshot(path=str(path))
                print(f"wrote {path}")
                page.close()
            browser.close()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
