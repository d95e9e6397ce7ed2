#!/usr/bin/env python
"""Speed of the app's 3D view in a real browser, against Panel's VTK pane.

A script, not a test. It serves two small apps on 127.0.0.1 (a ~110k-triangle
built-in hip: the pelvis split into a periacetabular fragment and the rest,
plus the femur), opens them in headless Chromium (software WebGL) and prints
a markdown table of medians over N repeats:

a. slider -> picture, fragment rotated (only 4x4 matrices travel);
b. slider -> picture, fragment replaced by a ~15k-triangle mesh (a re-cut preview);
c. page open -> first picture of the whole scene;
d. server memory (RSS) per open session;
e. a. and b. again with ``pn.pane.VTK`` showing a pyvista plotter of the same
   scene, the move applied to the pyvista actor then ``pane.synchronize()``.

Times are taken in the browser, on one clock: from the moment the page sets
the slider's value (as a drag would) to the first WebGL draw call that draws
the bones after it (a draw of at least ``DRAW_MIN`` vertices). For the VTK
pane the browser draws more than once per change; "settled" is its last draw
before a quiet second. "Bytes" counts websocket frames received by the page.

Usage::

    python scripts/bench_viewer.py              # 20 repeats, about 3 minutes
    python scripts/bench_viewer.py --repeats 5 --no-pane
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# The browser and its flags are the browser tests' own (one list for both).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))
from conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

#: A draw call with at least this many vertices draws bone (vtk.js draws
#: triangles unindexed, 3 vertices each; the smallest bone here has ~16k).
DRAW_MIN = 30_000
#: Radius (mm) of the fragment around the head centre: ~15k triangles.
FRAGMENT_RADIUS_MM = (66.0, 68.0)

# Installed in every page before its scripts run: the time of each big draw.
DRAW_HOOK = """
(() => {
  window.__draws = [];
  for (const C of [WebGLRenderingContext, WebGL2RenderingContext]) {
    const names = ["drawArrays", "drawElements", "drawArraysInstanced", "drawElementsInstanced"];
    for (const fn of names) {
      const orig = C.prototype[fn];
      if (orig == null) continue;
      C.prototype[fn] = function (mode, a, b, ...rest) {
        const count = fn.startsWith("drawArrays") ? b : a;
        if (count >= DRAW_MIN) window.__draws.push(performance.now());
        return orig.call(this, mode, a, b, ...rest);
      };
    }
  }
})();
""".replace("DRAW_MIN", str(DRAW_MIN))

FIRST_MESH = "window.__hipvizTimes.events.find((e) => e.kind === 'mesh').recv"

SET_SLIDER = """
([title, value]) => {
  const doc = Bokeh.documents[0];
  const model = [...doc.all_models].find((m) => m.title === title);
  const t0 = performance.now();
  model.value = value;
  return t0;
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb() -> float:
    """Resident memory of this process (the server runs in it), MB; Linux only."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


# --- the scene ---------------------------------------------------------------


def submesh(vertices: np.ndarray, faces: np.ndarray, keep: np.ndarray):
    """(points, triangles) of the faces ``keep``, re-indexed."""
    f = faces[keep]
    used, inverse = np.unique(f, return_inverse=True)
    return vertices[used], inverse.reshape(-1, 3).astype(np.int32)


def build_scene(subdivisions: int):
    """Meshes by name, the head centre and two fragment variants (re-cuts)."""
    from hipviz.anatomy import builtin_hip

    hip = builtin_hip(side="left", subdivisions=subdivisions)
    v = np.asarray(hip.pelvis.vertices)
    f = np.asarray(hip.pelvis.faces)
    c = np.asarray(hip.head.center_mm)
    near = np.linalg.norm(v - c, axis=1)
    variants = []
    for radius in FRAGMENT_RADIUS_MM:
        inside = (near[f] < radius).all(axis=1)
        variants.append(submesh(v, f, inside))
    inside = (near[f] < FRAGMENT_RADIUS_MM[0]).all(axis=1)
    meshes = {
        "pelvis": submesh(v, f, ~inside),
        "fragment": variants[0],
        "femur": (np.asarray(hip.femur.vertices), np.asarray(hip.femur.faces, dtype=np.int32)),
    }
    return meshes, c, variants


def recut(variants, i: int):
    """Re-cut number ``i``: new arrays every time (a shift of i micrometres), as a
    real re-cut would send, so no side can reuse arrays it has already seen."""
    pts, tri = variants[i % 2]
    return pts + 1e-3 * i, tri


def rotation_about(center: np.ndarray, angle_deg: float) -> np.ndarray:
    """tf rotating by ``angle_deg`` about the A (y) axis through ``center``."""
    a = np.radians(angle_deg)
    r = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    tf = np.eye(4)
    tf[:3, :3] = r
    tf[:3, 3] = center - r @ center
    return tf


COLORS = {"pelvis": "#e8dcc8", "fragment": "#f0b27a", "femur": "#d5dbdb"}


def sliders(debounce_ms: int | None):
    """The two sliders of the apps; ``debounce_ms`` overrides Panel's 50 ms."""
    import panel as pn

    rot = pn.widgets.FloatSlider(name="rotation", start=-30, end=30, value=0)
    cut = pn.widgets.IntSlider(name="cut", start=0, end=1_000_000, value=0)
    if debounce_ms is not None:
        # Panel waits this long for more widget events before it runs callbacks.
        rot._debounce = cut._debounce = debounce_ms
    return rot, cut


def scene_app(meshes, center, variants, server_times, debounce_ms=None):
    import panel as pn

    from hipviz.app.viewer import SceneView

    view = SceneView(width=800, height=600, side="left")
    for name, (pts, tri) in meshes.items():
        view.set_mesh(name, pts, tri, color=COLORS[name])
    rot, cut = sliders(debounce_ms)

    def on_rot(event):
        t = time.perf_counter()
        view.set_matrix("fragment", rotation_about(center, event.new))
        server_times["a"].append(time.perf_counter() - t)

    def on_cut(event):
        t = time.perf_counter()
        pts, tri = recut(variants, event.new)
        view.set_mesh("fragment", pts, tri)
        server_times["b"].append(time.perf_counter() - t)

    rot.param.watch(on_rot, "value")
    cut.param.watch(on_cut, "value")
    return pn.Column(rot, cut, view)


def pane_app(meshes, center, variants, server_times):
    import panel as pn
    import pyvista as pv

    pl = pv.Plotter(off_screen=True, window_size=(800, 600))
    actors = {}
    for name, (pts, tri) in meshes.items():
        actors[name] = pl.add_mesh(pv.PolyData.from_regular_faces(pts, tri), color=COLORS[name])
    pl.view_xz()
    pane = pn.pane.VTK(pl.ren_win, width=800, height=600)
    rot, cut = sliders(None)

    def on_rot(event):
        t = time.perf_counter()
        actors["fragment"].user_matrix = rotation_about(center, event.new)
        pane.synchronize()
        server_times["a"].append(time.perf_counter() - t)

    def on_cut(event):
        t = time.perf_counter()
        pts, tri = recut(variants, event.new)
        actors["fragment"].mapper.dataset.copy_from(pv.PolyData.from_regular_faces(pts, tri))
        pane.synchronize()
        server_times["b"].append(time.perf_counter() - t)

    rot.param.watch(on_rot, "value")
    cut.param.watch(on_cut, "value")
    return pn.Column(rot, cut, pane)


# --- measuring ---------------------------------------------------------------


class Page:
    """One browser page on an app, counting websocket bytes received."""

    def __init__(self, browser, url: str):
        self.page = browser.new_page(viewport={"width": 900, "height": 800})
        self.page.add_init_script(DRAW_HOOK)
        self.bytes = 0
        self.page.on("websocket", self._ws)
        self.page.goto(url)

    def _ws(self, ws) -> None:
        ws.on("framereceived", self._frame)

    def _frame(self, payload) -> None:
        self.bytes += len(payload)

    def draws(self) -> list[float]:
        return self.page.evaluate("window.__draws")

    def wait_first_picture(self, timeout_s: float = 60.0) -> float:
        """ms from navigation start to the first draw of the bones."""
        self.page.wait_for_function("window.__draws.length > 0", timeout=timeout_s * 1000)
        return self.draws()[0]

    def settle(self, quiet_s: float) -> None:
        """Wait until no bone is drawn for ``quiet_s`` seconds."""
        n = -1
        while True:
            m = len(self.draws())
            if m == n:
                return
            n = m
            self.page.wait_for_timeout(quiet_s * 1000)

    def move(self, slider: str, value: float, *, quiet_s: float, timeout_s: float = 30.0):
        """(first picture ms, settled ms, bytes) after setting ``slider``."""
        self.settle(0.3)
        n0 = len(self.draws())
        b0 = self.bytes
        t0 = self.page.evaluate(SET_SLIDER, [slider, value])
        self.page.wait_for_function(f"window.__draws.length > {n0}", timeout=timeout_s * 1000)
        self.settle(quiet_s)
        after = [t for t in self.draws()[n0:] if t >= t0]
        # SceneView's own log: when the message arrived, when its frame was drawn.
        ev = self.page.evaluate(
            "window.__hipvizTimes ? window.__hipvizTimes.events.slice(-1)[0] : null"
        )
        split = (ev["recv"] - t0, ev["frame"] - ev["recv"]) if ev and ev["recv"] > t0 else None
        return after[0] - t0, after[-1] - t0, self.bytes - b0, split

    def close(self) -> None:
        self.page.close()


def med(values) -> float:
    return statistics.median(values) if values else float("nan")


LABELS = {
    "scene": "SceneView, stock slider",
    "scene0": "SceneView, slider without Panel's 50 ms debounce",
    "pane": "pn.pane.VTK(plotter.ren_win), stock slider",
}


def run(args) -> None:
    import panel as pn
    from playwright.sync_api import sync_playwright

    meshes, center, variants = build_scene(args.subdivisions)
    n_tri = sum(len(t) for _, t in meshes.values())
    n_frag = [len(t) for _, t in variants]
    kinds = ["scene", "scene0"] + (["pane"] if args.pane else [])
    server_times = {kind: {"a": [], "b": []} for kind in kinds}
    apps = {
        "/scene": lambda: scene_app(meshes, center, variants, server_times["scene"]),
        "/scene0": lambda: scene_app(meshes, center, variants, server_times["scene0"], 0),
        "/pane": lambda: pane_app(meshes, center, variants, server_times["pane"]),
    }
    port = free_port()
    server = pn.serve(
        apps,
        port=port,
        address="127.0.0.1",
        threaded=True,
        show=False,
        start=True,
        websocket_max_message_size=200 * 2**20,
    )
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        with sync_playwright() as pw:
            # launch() gives the browser a fresh temporary profile.
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            for kind in kinds:
                rows.append(bench_one(browser, f"{base}/{kind}", kind, args, server_times[kind]))
            browser.close()
    finally:
        server.stop()
    print_table(rows, args, n_tri, n_frag)


def bench_one(browser, url: str, kind: str, args, st: dict) -> dict:
    """Measure one way of showing the scene; a row of the table."""
    repeats = args.repeats
    quiet = 1.0 if kind == "pane" else 0.3
    row = {"label": LABELS[kind], "open": float("nan"), "n_open": 0, "rss": float("nan")}

    if kind != "scene0":  # c. and d. are the same page for both SceneView rows
        # d. server memory per open session, first, before closed sessions are
        # freed under it; one session open beforehand pays the one-off costs.
        first = Page(browser, url)
        first.wait_first_picture()
        gc.collect()
        rss0 = rss_mb()
        pages = [Page(browser, url) for _ in range(args.sessions)]
        for p in pages:
            p.wait_first_picture()
        gc.collect()
        row["rss"] = (rss_mb() - rss0) / args.sessions
        for p in [first, *pages]:
            p.close()

        # c. page open -> first picture
        opened, meshes_in = [], []
        for _ in range(repeats if kind == "scene" else max(3, repeats // 2)):
            page = Page(browser, url)
            opened.append(page.wait_first_picture())
            if kind == "scene":
                meshes_in.append(page.page.evaluate(FIRST_MESH))
            page.close()
        row.update(open=med(opened), n_open=len(opened), meshes_in=med(meshes_in))

    # a. and b. on one page, each after a warm-up move
    page = Page(browser, url)
    page.wait_first_picture()
    page.settle(1.0)
    moves = [
        page.move("rotation", float((i % 2) * 2 - 1) * (5 + i % 7), quiet_s=quiet)
        for i in range(repeats + 1)
    ][1:]
    cuts = [page.move("cut", i + 1, quiet_s=quiet) for i in range(repeats + 1)][1:]
    page.close()
    row.update(
        move_first=med([m[0] for m in moves]),
        move_settled=med([m[1] for m in moves]),
        move_bytes=med([m[2] for m in moves]),
        move_server=med(st["a"][1:]) * 1e3,
        move_split=[med([m[3][i] for m in moves if m[3]]) for i in (0, 1)],
        cut_first=med([c[0] for c in cuts]),
        cut_settled=med([c[1] for c in cuts]),
        cut_bytes=med([c[2] for c in cuts]),
        cut_server=med(st["b"][1:]) * 1e3,
        cut_split=[med([c[3][i] for c in cuts if c[3]]) for i in (0, 1)],
    )
    return row


def print_table(rows, args, n_tri, n_frag) -> None:
    print(
        f"\nhipviz 3D view benchmark: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {CHROMIUM} (software WebGL); scene {n_tri} "
        f"triangles, re-cut fragment {n_frag[0]}/{n_frag[1]}; medians of {args.repeats}\n"
    )
    print(
        "| view | a. rotate: first picture | settled | sent | server | "
        "b. re-cut: first picture | settled | sent | server | c. open -> picture | "
        "d. RSS / session |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        opened = f"{r['open']:.0f} ms (n={r['n_open']})" if r["n_open"] else "as above"
        rss = f"{r['rss']:.1f} MB" if r["n_open"] else "as above"
        print(
            f"| {r['label']} | {r['move_first']:.0f} ms | {r['move_settled']:.0f} ms | "
            f"{r['move_bytes'] / 1e3:.1f} kB | {r['move_server']:.1f} ms | "
            f"{r['cut_first']:.0f} ms | {r['cut_settled']:.0f} ms | "
            f"{r['cut_bytes'] / 1e6:.2f} MB | {r['cut_server']:.1f} ms | {opened} | {rss} |"
        )
    print("\nSceneView's own log, slider -> message in the browser | message -> frame drawn:")
    for r in rows:
        if r["label"].startswith("SceneView"):
            a, b = r["move_split"], r["cut_split"]
            print(
                f"- {r['label']}: rotate {a[0]:.0f} | {a[1]:.0f} ms; "
                f"re-cut {b[0]:.0f} | {b[1]:.0f} ms"
            )
    s = rows[0]
    print(
        f"- page open: the first mesh message arrives at {s['meshes_in']:.0f} ms "
        f"(page, scripts, vtk.js and the session before it), the picture at {s['open']:.0f} ms"
    )
    by = {r["label"]: r for r in rows}
    s, p = by.get(LABELS["scene"]), by.get(LABELS["pane"])
    if s and p:
        print(
            f"\nVTK pane / SceneView (both with the stock slider): rotate "
            f"{p['move_first'] / s['move_first']:.1f}x to the first picture, "
            f"{p['move_settled'] / s['move_settled']:.1f}x settled; re-cut "
            f"{p['cut_first'] / s['cut_first']:.1f}x, {p['cut_settled'] / s['cut_settled']:.1f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--subdivisions", type=int, default=15, help="built-in hip resolution (15: ~113k triangles)"
    )
    parser.add_argument(
        "--sessions", type=int, default=5, help="sessions held open to measure memory per session"
    )
    parser.add_argument(
        "--no-pane", dest="pane", action="store_false", help="skip the pn.pane.VTK comparison"
    )
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} not found: apt-get install chromium", file=sys.stderr)
        return 1
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
