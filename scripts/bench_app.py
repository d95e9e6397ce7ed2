#!/usr/bin/env python
"""Speed of the real hipviz web app in a real browser, against Panel's VTK pane.

A script, not a test. It serves ``hipviz.app.main.create_app`` (the page of
``hipviz serve``) with ``pn.serve`` in a thread on 127.0.0.1, opens it at
``/?case=dysplastic&procedure=pao`` in headless Chromium (software WebGL, each
page in a fresh browser context, i.e. an empty HTTP cache) and prints markdown
tables of medians for the targets:

a. "Lateral turn" slider -> first frame drawn after it (<= 50 ms);
b. "Iliac cut offset (mm)" slider (in the "Cut adjustments" card) -> the frame
   that shows the last of the new pieces (<= 150 ms);
c. page open -> first picture (``firstPicture``), cold and warm (<= 3 s);
d. server memory (RSS growth of this process) per extra open session (<= 300 MB);
e. a. and c. again with ``pn.pane.VTK`` showing a pyvista plotter of the same
   pieces (the fragment's pose applied to its actor, then ``pane.synchronize()``),
   and the ratio pane / app.

Sliders are driven as a user would: the page focuses the slider's noUiSlider
handle (inside Bokeh's shadow DOM) and Playwright presses PageUp/PageDown on it
(one press = 5 steps: 2.5 degrees or 2.5 mm). The time origin is a keydown
listener on that handle; the end is the app's own log (``window.__hipvizTimes``
in ``hipviz/app/viewer.js``: per change, when its message arrived and the
frame that drew it) and, for the comparison with the pane, the first WebGL
draw call drawing bone (``bench_viewer.DRAW_HOOK``). ``noUiSlider.set(v)`` is
not used: it moves the handle without firing the events Bokeh listens to, so
the value never reaches the server.

Usage::

    python scripts/bench_app.py                # 20 repeats, 3-4 minutes
    python scripts/bench_app.py --quick        # a few of each, about 1.5 minutes
    python scripts/bench_app.py --repeats 10 --no-pane
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_viewer import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    DRAW_HOOK,
    DRAW_MIN,
    Page,
    free_port,
    med,
    rss_mb,
)

QUERY = "?case=dysplastic&procedure=pao"
ROTATE = "Lateral turn (°)"
CUT = "Iliac cut offset (mm)"
CUT_CARD = "Cut adjustments"
#: The app's mesh resolution (``create_app``'s default).
SUBDIVISIONS = 8
#: A draw call of at least this many vertices draws bone. The smallest piece,
#: the acetabular fragment, has ~2.5k triangles (7.6k vertices, drawn
#: unindexed); angle lines have a few dozen.
DRAW_MIN_APP = 3000
VIEWPORT = {"width": 1400, "height": 900}
#: Keys that walk a slider 0 -> +10 -> 0 in 2.5 steps, again and again.
WALK = ["PageUp"] * 4 + ["PageDown"] * 4
#: Keys for the cut: 0 -> 2.5 -> 5 -> 2.5 -> 0 mm.
CUT_WALK = ["PageUp", "PageUp", "PageDown", "PageDown"]
TARGETS = {"rotate": 50.0, "cut": 150.0, "open": 3000.0, "rss": 300.0}

# The handle of the slider titled `title`, focused, with a keydown listener
# that notes when a key reaches it (the time origin of a change).
FOCUS_SLIDER = """
(title) => {
  window.__benchHandles = window.__benchHandles || {};
  let handle = window.__benchHandles[title];
  if (handle == null || !handle.isConnected) {
    handle = null;
    const stack = [document];
    while (stack.length && handle == null) {
      const root = stack.pop();
      for (const el of root.querySelectorAll("*")) {
        if (el.shadowRoot) stack.push(el.shadowRoot);
        if (el.noUiSlider == null || el.parentElement == null) continue;
        const t = el.parentElement.querySelector(".bk-slider-title");
        if (t != null && t.textContent.startsWith(title)) {
          handle = el.querySelector(".noUi-handle");
          break;
        }
      }
    }
    if (handle == null) return false;
    handle.addEventListener("keydown", () => { window.__keyT0 = performance.now(); },
                            {capture: true});
    window.__benchHandles[title] = handle;
  }
  window.__keyT0 = null;
  handle.focus();
  const r = handle.getBoundingClientRect();
  return r.width > 0 && r.height > 0;
}
"""

# The page shows the requested plan: the scene model knows the fragment.
HAS_FRAGMENT = """
() => {
  if (window.__hipvizTimes == null || window.__hipvizTimes.firstPicture == null) return false;
  const m = [...Bokeh.documents[0].all_models].find((m) => m.data && m.data.actors != null);
  return m != null && "acetabular_fragment" in m.data.actors;
}
"""

OPEN_INFO = """
() => {
  const T = window.__hipvizTimes;
  const nav = performance.getEntriesByType("navigation")[0];
  const meshes = T.events.filter((e) => e.kind === "mesh");
  return {
    firstPicture: T.firstPicture,
    firstMesh: meshes.length ? meshes[0].recv : null,
    lastMeshFrame: meshes.length ? Math.max(...meshes.map((e) => e.frame ?? -1)) : null,
    removes: T.events.filter((e) => e.kind === "remove").length,
    domLoaded: nav ? nav.domContentLoadedEventEnd : null,
    firstDraw: window.__draws.length ? window.__draws[0] : null,
  };
}
"""

CANVAS_SIZE = """
() => {
  let best = null;
  const stack = [document];
  while (stack.length) {
    const root = stack.pop();
    for (const el of root.querySelectorAll("*")) {
      if (el.shadowRoot) stack.push(el.shadowRoot);
      if (el.tagName === "CANVAS" && el.clientWidth * el.clientHeight > 0) {
        const s = [el.clientWidth, el.clientHeight, el.width, el.height];
        if (best == null || s[0] * s[1] > best[0] * best[1]) best = s;
      }
    }
  }
  return best;
}
"""

# Sizes of the websocket messages the page receives, counted in the page (not
# through Playwright, which would copy every payload into this process, where
# the server runs).
WS_COUNTER = """
(() => {
  const Orig = window.WebSocket;
  const utf8 = new TextEncoder();
  window.__wsSizes = [];
  window.WebSocket = class extends Orig {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (ev) => {
        const d = ev.data;
        const n = typeof d === "string" ? utf8.encode(d).length : (d.byteLength ?? d.size);
        window.__wsSizes.push(n);
      });
    }
  };
})();
"""

EVENTS_AFTER = """
(t0) => window.__hipvizTimes.events.filter((e) => e.recv > t0)
"""


def draw_hook(draw_min: int) -> str:
    old = f"count >= {DRAW_MIN}"
    if old not in DRAW_HOOK:  # pragma: no cover - bench_viewer changed
        msg = "bench_viewer.DRAW_HOOK no longer has its draw threshold"
        raise RuntimeError(msg)
    return DRAW_HOOK.replace(old, f"count >= {draw_min}")


# --- the server --------------------------------------------------------------


def timed(obj, name: str, times: list) -> None:
    """Replace ``obj.name`` (on this instance only) by a copy that logs its duration."""
    fn = getattr(obj, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - t)

    setattr(obj, name, wrapper)


#: Server steps timed in every app session: (label, attribute of the app, method).
APP_STEPS = (
    ("session.update", "session", "update"),
    ("scene.send_meshes", "scene", "send_meshes"),
    ("scene.pose", "scene", "pose"),
    ("measures.update", "measures", "update"),
    ("_refresh (all)", "", "_refresh"),
)


def app_factory(sessions: list):
    """``create_app`` for pn.serve, noting each session's app and server times."""
    import panel as pn  # noqa: TID251

    from hipviz.app.main import create_app

    def make():
        t = time.perf_counter()
        app = create_app(subdivisions=SUBDIVISIONS)
        entry = {"app": app, "create_s": time.perf_counter() - t, "times": defaultdict(list)}
        for label, path, method in APP_STEPS:
            timed(getattr(app, path) if path else app, method, entry["times"][label])
        close = app.close

        def closed():
            entry["closed"] = True
            entry.pop("app", None)  # let the destroyed session's objects go
            entry.pop("doc", None)
            close()

        app.close = closed  # on_session_destroyed looks it up when it runs
        entry["doc"] = pn.state.curdoc
        sessions.append(entry)
        return app

    return make


def pane_factory(sessions: list, size: dict):
    """The same pieces in ``pn.pane.VTK``, the same "Lateral turn" slider beside it."""
    import panel as pn  # noqa: TID251
    import pyvista as pv

    from hipviz import render
    from hipviz.app.state import HipSession, Plan
    from hipviz.app.widgets import live_slider

    def make():
        t = time.perf_counter()
        plan = Plan(case="dysplastic", procedure="pao")
        session = HipSession(subdivisions=SUBDIVISIONS)
        session.update(plan)
        sc = render.scene(session.sim, session.outcome, angles=False)
        width, height = size.get("css", (800, 600))
        pl = pv.Plotter(off_screen=True, window_size=(width, height))
        pl.set_background("white")
        actors = {}
        for name, piece in sc.pieces.items():
            mesh = piece.mesh.copy()
            kwargs = {"color": piece.color}
            if name in sc.colors:
                mesh.point_data["rgb"] = sc.colors[name]
                kwargs = {"scalars": "rgb", "rgb": True}
            actor = pl.add_mesh(mesh, opacity=piece.opacity, smooth_shading=piece.smooth, **kwargs)
            actor.user_matrix = sc.poses[name]
            actors[name] = actor
        pl.camera_position = render.camera(plan.view, sc.side, sc.focal_point)
        pane = pn.pane.VTK(pl.ren_win, width=width, height=height)
        entry = {"create_s": time.perf_counter() - t, "times": defaultdict(list)}

        def on_move(*events):
            t0 = time.perf_counter()
            session.update(plan)
            t1 = time.perf_counter()
            tf = render.poses(session.sim, session.outcome)["acetabular_fragment"]
            actors["acetabular_fragment"].user_matrix = tf
            pane.synchronize()
            t2 = time.perf_counter()
            entry["times"]["session.update"].append(t1 - t0)
            entry["times"]["pose + synchronize()"].append(t2 - t1)
            entry["times"]["all"].append(t2 - t0)

        plan.param.watch(on_move, ["pao_lateral"])
        if pn.state.curdoc is not None:
            pn.state.on_session_destroyed(lambda ctx: pl.close())
        sessions.append(entry)
        return pn.Row(pn.Column(live_slider(plan, "pao_lateral"), width=330), pane)

    return make


def clear_caches() -> int:
    """Forget every cached anatomy (lru caches of hipviz's modules): a cold session."""
    from hipviz import anatomy, atlas, cases, frames
    from hipviz.app import state

    n = 0
    for mod in (anatomy, atlas, cases, frames):
        for obj in list(vars(mod).values()):
            if callable(getattr(obj, "cache_clear", None)):
                obj.cache_clear()
                n += 1
    state._ANALYSES.clear()  # the app's analyses of the built-in bones
    return n + 1


# --- the browser -------------------------------------------------------------


class BenchPage(Page):
    """bench_viewer's Page with the bone-draw threshold of this scene, a wider window,
    and websocket messages counted in the page."""

    def __init__(self, browser, url: str, draw_min: int = DRAW_MIN_APP):
        self.page = browser.new_page(viewport=VIEWPORT)
        self.page.add_init_script(draw_hook(draw_min))
        self.page.add_init_script(WS_COUNTER)
        self.page.goto(url)

    def n_messages(self) -> int:
        return self.page.evaluate("window.__wsSizes.length")

    def sizes(self, start: int) -> list[int]:
        """Sizes (bytes) of the websocket messages received since message ``start``."""
        return self.page.evaluate("(n) => window.__wsSizes.slice(n)", start)

    def press(self, title: str, key: str) -> float:
        """Press ``key`` on the slider ``title``'s handle; the browser time of the keydown."""
        if not self.page.evaluate(FOCUS_SLIDER, title):
            msg = f"no visible slider titled {title!r} on the page"
            raise RuntimeError(msg)
        self.page.keyboard.press(key)
        t0 = self.page.evaluate("window.__keyT0")
        if t0 is None:
            msg = f"the key did not reach the handle of {title!r}"
            raise RuntimeError(msg)
        return t0


def open_app(browser, url: str, timeout_s: float = 120.0) -> tuple[BenchPage, dict]:
    """Open the app; wait for the requested plan's picture; times from navigation start."""
    page = BenchPage(browser, url)
    page.page.wait_for_function(HAS_FRAGMENT, timeout=timeout_s * 1000)
    page.settle(0.5)
    return page, page.page.evaluate(OPEN_INFO)


def app_change(page: BenchPage, title: str, key: str, cut: bool, times: dict) -> dict:
    """One slider change on the app: browser times (ms after the keydown), bytes, server split."""
    page.settle(0.3)
    n_msg, n_draws = page.n_messages(), len(page.draws())
    before = {k: len(v) for k, v in times.items()}
    t0 = page.press(title, key)
    # a new cut: wait for the new fragment and rest (then for quiet); a move: the matrices
    kind, count = ("mesh", 2) if cut else ("matrices", 1)
    page.page.wait_for_function(
        "([t0, kind, n]) => window.__hipvizTimes.events"
        ".filter((e) => e.recv > t0 && e.kind === kind).length >= n",
        arg=[t0, kind, count],
        timeout=30_000,
    )
    page.settle(0.3)
    events = page.page.evaluate(EVENTS_AFTER, t0)
    drawn = [e for e in events if "frame" in e]  # all: the log holds drawn changes only
    draws = [t for t in page.draws()[n_draws:] if t >= t0]
    sizes = page.sizes(n_msg)
    return {
        "first": min(e["frame"] for e in drawn) - t0,
        "shown": max(e["frame"] for e in drawn if e["kind"] == kind) - t0,
        "settled": max(e["frame"] for e in drawn) - t0,
        "recv": min(e["recv"] for e in events) - t0,
        "recv_last": max(e["recv"] for e in events) - t0,
        "draw": draws[0] - t0 if draws else float("nan"),
        "bytes": sum(sizes),
        "sizes": sizes,
        "meshes": sum(1 for e in events if e["kind"] == "mesh"),
        "kinds": sorted({e["kind"] for e in events}),
        "server": {k: 1e3 * sum(v[before.get(k, 0) :]) for k, v in times.items()},
    }


def pane_change(page: BenchPage, key: str) -> dict:
    """One "Lateral turn" change on the VTK pane page, as bench_viewer's Page.move."""
    page.settle(0.5)
    n_msg, n0 = page.n_messages(), len(page.draws())
    t0 = page.press(ROTATE, key)
    page.page.wait_for_function(f"window.__draws.length > {n0}", timeout=30_000)
    page.settle(1.0)
    after = [t for t in page.draws()[n0:] if t >= t0]
    return {"draw": after[0] - t0, "settled": after[-1] - t0, "bytes": sum(page.sizes(n_msg))}


#: 1-minute load average at each step of the run.
LOADS: list[float] = []


def note(text: str) -> None:
    LOADS.append(os.getloadavg()[0])
    print(text, file=sys.stderr, flush=True)


# --- the run -----------------------------------------------------------------


def run(args) -> dict:
    import panel as pn  # noqa: TID251
    from playwright.sync_api import sync_playwright

    res: dict = {"load_start": os.getloadavg(), "t_start": time.monotonic()}
    app_sessions: list = []
    pane_sessions: list = []
    pane_size: dict = {}
    port = free_port()
    server = pn.serve(
        {"/": app_factory(app_sessions), "/pane": pane_factory(pane_sessions, pane_size)},
        port=port,
        address="127.0.0.1",
        threaded=True,
        show=False,
        start=True,
        websocket_max_message_size=200 * 2**20,
    )
    base = f"http://127.0.0.1:{port}"
    app_url = f"{base}/{QUERY}"
    try:
        with sync_playwright() as pw:
            # launch() gives the browser a fresh temporary profile.
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            res["chromium"] = browser.version
            bench_app(browser, app_url, args, app_sessions, res)
            res["rss_after_app"] = rss_mb()
            if args.pane:
                pane_size["css"] = tuple(res["canvas"][:2])
                bench_pane(browser, f"{base}/pane", args, pane_sessions, res)
            browser.close()
    finally:
        server.stop()
    res["sessions"] = len(app_sessions)
    res["destroyed"] = sum(1 for s in app_sessions if s.get("closed"))
    res["load_end"] = os.getloadavg()
    res["runtime_s"] = time.monotonic() - res["t_start"]
    return res


def bench_app(browser, url: str, args, sessions: list, res: dict) -> None:
    # c. cold: the first session of this server process; it stays open as the
    # warm-up session of d.
    note("c. cold open (first session of the server) ...")
    first, info = open_app(browser, url)
    res["open_cold"] = [info]
    res["create_cold_s"] = sessions[-1]["create_s"]
    res["reload_cold_ms"] = [1e3 * t for t in sessions[-1]["times"]["_refresh (all)"]]
    res["canvas"] = first.page.evaluate(CANVAS_SIZE)

    # d. server memory per extra open session
    note(f"d. memory: {args.sessions} more sessions ...")
    gc.collect()
    rss0 = rss_mb()
    pages = [open_app(browser, url)[0] for _ in range(args.sessions)]
    gc.collect()
    res["rss_per_session"] = (rss_mb() - rss0) / args.sessions
    res["rss_base"] = rss0
    for p in [first, *pages]:
        p.close()

    # c. cold anatomy (caches cleared before each open), then warm
    res["open_cold_anatomy"] = []
    for i in range(args.cold):
        note(f"c. open with the anatomy caches cleared {i + 1}/{args.cold} ...")
        clear_caches()
        page, info = open_app(browser, url)
        res["open_cold_anatomy"].append(info)
        page.close()
    res["open_warm"], res["create_warm_s"], res["reload_warm_ms"] = [], [], []
    for i in range(args.opens):
        note(f"c. warm open {i + 1}/{args.opens} ...")
        page, info = open_app(browser, url)
        res["open_warm"].append(info)
        res["create_warm_s"].append(sessions[-1]["create_s"])
        res["reload_warm_ms"] += [1e3 * t for t in sessions[-1]["times"]["_refresh (all)"]]
        page.close()

    # a. and b. on one page, each after a warm-up change
    page, _ = open_app(browser, url)
    entry = sessions[-1]
    times = entry["times"]
    note(f"a. {args.repeats + 1} rotations ...")
    res["rotate"], res["rotate_warmup"] = collect(
        lambda i: app_change(page, ROTATE, WALK[i % len(WALK)], False, times), args.repeats
    )
    note(f"b. {args.repeats + 1} cut changes ...")
    page.page.get_by_text(CUT_CARD).click()
    page.settle(0.5)
    n_meshes = len(entry["app"].scene.view3d.mesh_names)
    res["n_meshes"] = n_meshes
    res["cut"], res["cut_warmup"] = collect(
        lambda i: app_change(page, CUT, CUT_WALK[i % len(CUT_WALK)], True, times),
        args.repeats,
    )
    res["debounce"] = {t: slider_debounce(entry["app"], t) for t in (ROTATE, CUT)}
    plan = entry["app"].plan
    res["final_plan"] = {"pao_lateral": plan.pao_lateral, "cut_iliac": plan.cut_iliac}
    res["triangles"] = {
        name: len(mesh["triangles"]) // 3
        for name, mesh in entry["app"].scene.view3d._meshes.items()
    }
    page.close()


def slider_debounce(app, title: str):
    """Panel's wait (ms) before the server acts on the slider ``title``; None if not found."""
    for layout in (app.controls.pao_sliders, app.controls.cut_card):
        for w in getattr(layout, "objects", []):
            if title in (getattr(w, "label", None), getattr(w, "name", None)):
                return getattr(w, "_debounce", None)
    return None


def collect(change, repeats: int) -> tuple[list, dict | None]:
    """``repeats`` results of ``change(i)`` after one warm-up, and the warm-up's.

    A failed change (a timeout) is noted and stands as None.
    """
    out = []
    for i in range(repeats + 1):
        try:
            r = change(i)
        except Exception as exc:  # a timeout: note it, keep going
            note(f"  change {i} failed: {exc!s:.200}")
            r = None
        out.append(r)
    return out[1:], out[0]


def bench_pane(browser, url: str, args, sessions: list, res: dict) -> None:
    res["pane_open"], res["pane_create_s"] = [], []
    for i in range(args.pane_opens):
        note(f"e. VTK pane open {i + 1}/{args.pane_opens} ...")
        page = BenchPage(browser, url)
        res["pane_open"].append(page.wait_first_picture(120.0))
        res["pane_create_s"].append(sessions[-1]["create_s"])
        page.close()
    page = BenchPage(browser, url)
    page.wait_first_picture(120.0)
    page.settle(1.0)
    times = sessions[-1]["times"]
    note(f"e. VTK pane: {args.repeats + 1} rotations ...")
    res["pane_rotate"], _ = collect(lambda i: pane_change(page, WALK[i % len(WALK)]), args.repeats)
    res["pane_server"] = {k: [1e3 * t for t in v[1:]] for k, v in times.items()}
    page.close()


# --- the report --------------------------------------------------------------


def fmt_ms(values, digits: int = 0) -> str:
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "–"
    return f"{med(values):.{digits}f} ms"


def spread(values) -> str:
    values = sorted(v for v in values if v is not None and v == v)
    if len(values) < 2:
        return ""
    return f"{values[0]:.0f}–{values[-1]:.0f}"


def verdict(value: float, limit: float) -> str:
    if value != value:
        return "?"
    return "yes" if value <= limit else "**no**"


def machine_facts(res: dict) -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import bokeh
    import panel
    import vtk

    return (
        f"{platform.machine()}, {os.cpu_count()} cores ({cpu or 'cpu unknown'}), "
        f"Python {platform.python_version()}, Panel {panel.__version__}, Bokeh "
        f"{bokeh.__version__}, VTK {vtk.vtkVersion.GetVTKVersion()}, Chromium "
        f"{res.get('chromium', '?')} headless (SwiftShader WebGL)"
    )


def print_report(res: dict, args) -> None:
    ok = lambda rows: [r for r in rows if r is not None]  # noqa: E731
    rot, cut = ok(res["rotate"]), ok(res["cut"])
    cold = res["open_cold"][0]["firstPicture"]
    cold_an = [o["firstPicture"] for o in res["open_cold_anatomy"]]
    warm = [o["firstPicture"] for o in res["open_warm"]]
    la0, la1 = res["load_start"], res["load_end"]
    w, h, pw, ph = res["canvas"]
    print(
        f"\n## hipviz web app benchmark\n\n{machine_facts(res)}.\n"
        f"Load average (1/5/15 min) at start {la0[0]:.2f}/{la0[1]:.2f}/{la0[2]:.2f}, "
        f"at end {la1[0]:.2f}/{la1[1]:.2f}/{la1[2]:.2f}, highest 1-min value seen "
        f"{max(LOADS, default=la1[0]):.2f}; run {res['runtime_s']:.0f} s.\n"
        f"Page `/{QUERY}`, window {VIEWPORT['width']}x{VIEWPORT['height']}, 3D canvas "
        f"{w}x{h} CSS px ({pw}x{ph} px); scene "
        + ", ".join(f"{k} {v}" for k, v in res["triangles"].items())
        + " triangles.\n"
    )
    n_rot, n_cut = len(rot), len(cut)
    failed = (args.repeats - n_rot) + (args.repeats - n_cut)
    print("| target | median | range | n | limit | met |")
    print("|---|---|---|---|---|---|")
    a = med([r["first"] for r in rot])
    print(
        f'| a. rotate ("{ROTATE}", 2.5° key step) -> first frame | {a:.0f} ms | '
        f"{spread([r['first'] for r in rot])} | {n_rot} | ≤ {TARGETS['rotate']:.0f} ms | "
        f"{verdict(a, TARGETS['rotate'])} |"
    )
    b = med([r["shown"] for r in cut])
    print(
        f'| b. cut ("{CUT}", 2.5 mm key step) -> new pieces drawn | {b:.0f} ms | '
        f"{spread([r['shown'] for r in cut])} | {n_cut} | ≤ {TARGETS['cut']:.0f} ms | "
        f"{verdict(b, TARGETS['cut'])} |"
    )
    for label, values in (
        ("cold (first session of the server)", [cold]),
        ("cold anatomy (hipviz caches cleared)", cold_an),
        ("warm", warm),
    ):
        if not values:
            continue
        m = med(values)
        print(
            f"| c. open -> first picture, {label} | {m:.0f} ms | {spread(values)} | "
            f"{len(values)} | ≤ {TARGETS['open']:.0f} ms | {verdict(m, TARGETS['open'])} |"
        )
    r = res["rss_per_session"]
    print(
        f"| d. server RSS per extra open session | {r:.1f} MB | | {args.sessions} | "
        f"≤ {TARGETS['rss']:.0f} MB | {verdict(r, TARGETS['rss'])} |"
    )
    if args.pane and res.get("pane_rotate"):
        prot = ok(res["pane_rotate"])
        app_draw = med([r["draw"] for r in rot])
        p_draw = med([r["draw"] for r in prot])
        p_set = med([r["settled"] for r in prot])
        app_open = med([o["firstDraw"] for o in res["open_warm"]])
        p_open = med(res["pane_open"])
        print(
            f"| e. VTK pane: rotate -> first bone draw / settled | {p_draw:.0f} / "
            f"{p_set:.0f} ms | {spread([r['draw'] for r in prot])} | {len(prot)} | | |"
        )
        print(
            f"| e. VTK pane: open -> first picture (warm) | {p_open:.0f} ms | "
            f"{spread(res['pane_open'])} | {len(res['pane_open'])} | | |"
        )
        print(
            f"| e. ratio pane / app: rotate (first bone draw; settled) | "
            f"{p_draw / app_draw:.1f}x; {p_set / med([r['settled'] for r in rot]):.1f}x | | | | |"
        )
        print(
            f"| e. ratio pane / app: open -> first picture (first bone draw, warm) | "
            f"{p_open / app_open:.1f}x | | | | |"
        )
    if failed:
        print(f"\n{failed} change(s) timed out and are left out (see stderr).")

    print("\n### Where the time goes (medians, ms after the keydown)\n")
    print(
        "| change | first message in browser | last message | first bone draw | first frame | "
        "picture shown | settled | received | server: "
        + " | ".join(k for k, _, _ in APP_STEPS)
        + " |"
    )
    print("|---" * (8 + len(APP_STEPS)) + "|")
    for label, rows in (("a. rotate", rot), ("b. cut", cut)):
        server = [med([r["server"].get(k, 0.0) for r in rows]) for k, _, _ in APP_STEPS]
        print(
            f"| {label} | {fmt_ms([r['recv'] for r in rows])} | "
            f"{fmt_ms([r['recv_last'] for r in rows])} | {fmt_ms([r['draw'] for r in rows])} | "
            f"{fmt_ms([r['first'] for r in rows])} | {fmt_ms([r['shown'] for r in rows])} | "
            f"{fmt_ms([r['settled'] for r in rows])} | "
            f"{med([r['bytes'] for r in rows]) / 1e3:.1f} kB | "
            + " | ".join(f"{v:.1f}" for v in server)
            + " |"
        )
    for label, rows in (("a. rotate", rot), ("b. cut", cut)):
        kinds = sorted({k for r in rows for k in r["kinds"]})
        total = med([r["server"].get("_refresh (all)", 0.0) for r in rows])
        rest = med([r["recv"] - r["server"].get("_refresh (all)", 0.0) for r in rows])
        print(
            f"- {label}: messages {', '.join(kinds)}; slider -> message in the browser minus "
            f"server compute ({total:.0f} ms) = {rest:.0f} ms (websocket both ways, Bokeh "
            "and Panel event handling, serialisation)"
        )
        last = rows[-1]["sizes"] if rows else []
        print(
            f"- {label}: websocket messages received per change, median "
            f"{med([len(r['sizes']) for r in rows]):.0f}; the last change's, bytes: "
            + ", ".join(str(n) for n in last)
        )
    warm = [(k, res[f"{k}_warmup"]) for k in ("rotate", "cut")]
    print(
        "- the first change of each kind on the page (left out above): "
        + "; ".join(
            f"{k} first frame {w['first']:.0f} ms, shown {w['shown']:.0f} ms, server "
            f"{w['server'].get('_refresh (all)', 0.0):.0f} ms"
            for k, w in warm
            if w
        )
    )
    print(
        "- Panel's wait before the server acts on a slider change (`_debounce`): "
        + ", ".join(f'"{t}" {d} ms' for t, d in res["debounce"].items())
    )
    print(
        f"- b. cut: meshes received per cut, median {med([r['meshes'] for r in cut]):.0f} "
        f"(the scene has {res['n_meshes']}: " + ", ".join(res["triangles"]) + ")"
    )

    print("\n### Page open (medians, ms from navigation start)\n")
    print("| open | DOMContentLoaded | first mesh message | first picture | requested plan drawn |")
    print("|---|---|---|---|---|")
    for label, rows in (
        ("cold (first session)", res["open_cold"]),
        ("cold anatomy", res["open_cold_anatomy"]),
        ("warm", res["open_warm"]),
    ):
        if rows:
            print(
                f"| {label} (n={len(rows)}) | {fmt_ms([o['domLoaded'] for o in rows])} | "
                f"{fmt_ms([o['firstMesh'] for o in rows])} | "
                f"{fmt_ms([o['firstPicture'] for o in rows])} | "
                f"{fmt_ms([o['lastMeshFrame'] for o in rows])} |"
            )
    default_first = sum(1 for o in [*res["open_cold"], *res["open_warm"]] if o["removes"])
    reloads = ""
    if res["reload_cold_ms"] or res["reload_warm_ms"]:
        reloads = (
            f"; then `_refresh` again during the open (e.g. a reload for the URL query): "
            f"{fmt_ms(res['reload_cold_ms'])} cold, {fmt_ms(res['reload_warm_ms'])} warm"
        )
    print(
        f"- server: `create_app` (the session and its hip, blocking the server's event loop) "
        f"{res['create_cold_s'] * 1e3:.0f} ms cold, {med(res['create_warm_s']) * 1e3:.0f} ms "
        f"warm{reloads}."
    )
    print(
        f"- pages whose first picture was the default hip, replaced afterwards: "
        f"{default_first} of {len(res['open_cold']) + len(res['open_warm'])}."
    )
    print(
        f"- RSS of the server process: {res['rss_base']:.0f} MB after the first session, "
        f"{res['rss_after_app']:.0f} MB after the app runs; sessions destroyed by the end: "
        f"{res['destroyed']} of {res['sessions']}."
    )
    if args.pane and res.get("pane_rotate"):
        prot = ok(res["pane_rotate"])
        ps = res["pane_server"]
        print(f"\n### VTK pane (same pieces, fixed {w}x{h} px, only the fragment's actor moves)\n")
        print(
            f"- rotate: first bone draw {fmt_ms([r['draw'] for r in prot])}, settled "
            f"{fmt_ms([r['settled'] for r in prot])}, received "
            f"{med([r['bytes'] for r in prot]) / 1e3:.1f} kB; server "
            + ", ".join(f"{k} {fmt_ms(v, 1)}" for k, v in ps.items())
        )
        print(
            f"- open -> first bone draw {fmt_ms(res['pane_open'])} (server builds the session "
            f"and plotter in {med(res['pane_create_s']) * 1e3:.0f} ms)"
        )
        print(
            f"- app for comparison: rotate first bone draw "
            f"{fmt_ms([r['draw'] for r in rot])}, settled {fmt_ms([r['settled'] for r in rot])}; "
            f"open -> first bone draw {fmt_ms([o['firstDraw'] for o in res['open_warm']])} (warm)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="slider changes of each kind")
    parser.add_argument(
        "--sessions", type=int, default=4, help="extra sessions held open to measure memory"
    )
    parser.add_argument(
        "--no-pane", dest="pane", action="store_false", help="skip the pn.pane.VTK comparison"
    )
    parser.add_argument(
        "--quick", action="store_true", help="5 changes of each kind, fewer page opens"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.sessions = min(args.repeats, 5), min(args.sessions, 2)
    args.cold = 1 if args.quick else 3
    args.opens = 3 if args.quick else max(5, args.repeats // 2)
    args.pane_opens = 2 if args.quick else max(3, args.repeats // 4)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} not found: apt-get install chromium", file=sys.stderr)
        return 1
    res = run(args)
    print_report(res, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
