"""A plan the patient takes home: one self-contained HTML file.

:func:`handout_html` writes the hip before and after a planned move as an
interactive 3D view (turn with a finger or the mouse, pinch or wheel to zoom,
a Before / After switch), the explain steps of the operation in plain words
(:mod:`hipviz.explain`), the measures table with its colour bands
(:mod:`hipviz.report`), the date and a "not a medical device" line.

The file needs no server and no network: the meshes (decimated to
:data:`HANDOUT_TRIANGLES` in all, which a phone draws smoothly) are inlined
as base64, and so is the vendored three.js (:data:`THREE_VERSION`, MIT,
``hipviz/vendor``). A Content-Security-Policy meta tag forbids every outside
host. Every text from a user (file names, labels) is escaped.

Frames and units: the measurement frame of the
:class:`hipviz.simulate.Simulation` (RAS, mm); a pose ``tf_world_piece``
(4, 4) is sent column-major, as three.js's ``Matrix4.fromArray`` reads it.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import numpy as np

from . import explain, report
from .reference import LOAD_MEASURES, lookup
from .simulate import Outcome, Simulation

#: Triangles of all the pieces together in a handout (a phone draws this smoothly).
HANDOUT_TRIANGLES = 120_000
#: The vendored three.js (``hipviz/vendor/three.cjs``, MIT).
THREE_VERSION = "0.170.0"
#: The Content-Security-Policy of a handout: nothing from any host, inline code only.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)
DISCLAIMER = (
    "A picture to talk through a plan with your surgeon: a teaching aid, not a medical "
    "device. The bones are shown without cartilage; your operation may differ."
)


def vendored(name: str) -> str:
    """Text of a vendored file of ``hipviz/vendor`` (e.g. ``"three.cjs"``)."""
    return resources.files("hipviz").joinpath("vendor", name).read_text(encoding="utf-8")


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _budgets(counts: Mapping[str, int], total: int) -> dict[str, int]:
    """Triangles per piece: ``total`` shared in proportion to each piece's count."""
    n = sum(counts.values())
    if n <= total:
        return dict(counts)
    return {k: max(200, int(total * c / n)) for k, c in counts.items()}


def mesh_payload(
    sim: Simulation, outcome: Outcome | None, *, max_triangles: int = HANDOUT_TRIANGLES
) -> dict[str, Any]:
    """The 3D view's data: decimated pieces, their poses and colours before and after.

    Parameters
    ----------
    sim : Simulation
        The hip, cut as planned.
    outcome : Outcome, optional
        The move (None: "after" is "before").
    max_triangles : int
        Budget of all the pieces together.

    Returns
    -------
    dict
        JSON-ready: ``pieces`` (name, colour, base64 float32 ``positions``
        (n*3), base64 ``index`` (m*3, uint16 or uint32 per ``index_type``),
        ``pose_before`` and ``pose_after`` (16 floats, column-major), and,
        for the femur, base64 uint8 ``colors_before``/``colors_after``
        (n*3) of the head coverage), ``lines_before``/``lines_after``
        (points, colour), ``target`` (3,) mm (the head centre), ``side``,
        ``triangles`` (sent in all).
    """
    from . import render

    pieces = render.bone_meshes(sim)
    before, after = render.poses(sim, None), render.poses(sim, outcome)
    budgets = _budgets({k: p.mesh.n_cells for k, p in pieces.items()}, max_triangles)
    cov_before = sim.analysis.coverage
    cov_after = cov_before if outcome is None else outcome.coverage_after
    out: list[dict[str, Any]] = []
    sent = 0
    for name, piece in pieces.items():
        points, tri = render.triangles(render.decimate(piece.mesh, budgets[name]))
        sent += len(tri)
        small = len(points) < 65536
        item = {
            "name": name,
            "color": piece.color,
            "positions": _b64(points.astype(np.float32)),
            "index": _b64(tri.astype(np.uint16 if small else np.uint32)),
            "index_type": "uint16" if small else "uint32",
            "pose_before": np.asarray(before[name], dtype=float).T.ravel().tolist(),
            "pose_after": np.asarray(after[name], dtype=float).T.ravel().tolist(),
        }
        if name in ("femur", "femur_proximal"):
            for key, cov in (("colors_before", cov_before), ("colors_after", cov_after)):
                if cov is not None:
                    item[key] = _b64(
                        render.coverage_colors(points, sim.center_mm, sim.radius_mm, cov, sim.axes)
                    )
        out.append(item)

    def lines(state: Outcome | None) -> list[dict[str, Any]]:
        return [
            {"points": np.asarray(ln.points, dtype=float).round(2).ravel().tolist(), "color": c}
            for ln in render.measure_lines(sim, state).values()
            for c in [ln.color]
        ]

    return {
        "pieces": out,
        "lines_before": lines(None),
        "lines_after": lines(outcome) if outcome is not None else lines(None),
        "target": np.asarray(sim.center_mm, dtype=float).round(2).tolist(),
        "side": sim.analysis.side,
        "triangles": sent,
    }


def explain_kind(plan: Mapping[str, Any]) -> str | None:
    """The kind of operation :func:`hipviz.explain.steps` tells for a plan (None: no move).

    ``plan`` is :attr:`hipviz.simulate.Outcome.plan`: its acetabular
    ``procedure`` if any, else ``"femoral"`` when the femur is cut.
    """
    if plan.get("procedure"):
        return str(plan["procedure"])
    if (plan.get("femoral") or {}).get("level_mm") is not None:
        return "femoral"
    return None


def _steps_html(kind: str | None, values: Mapping[str, Any]) -> str:
    esc = html.escape
    if kind is None:
        return "<p>No operation is planned in this file: it shows the hip as it is.</p>"
    items = "".join(
        f"<li><h3>{esc(s.title)}</h3><p>{esc(s.text)}</p></li>" for s in explain.steps(kind, values)
    )
    return f"<h3 class='kind'>{esc(explain.KIND_TITLES[kind])}</h3><ol class='steps'>{items}</ol>"


_CSS = """
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0;
  background: #fafafa; line-height: 1.4; }
main { max-width: 860px; margin: auto; padding: 10px 12px 40px; }
h1 { font-size: 22px; margin: 6px 0 2px; } h2 { font-size: 18px; margin: 22px 0 6px; }
h3 { font-size: 16px; margin: 0 0 2px; } .sub { color: #555; font-size: 14px; }
.disclaimer { background: #fff4e0; border-left: 4px solid #d99a00; padding: 6px 10px;
  font-size: 14px; margin: 8px 0; }
#hv-view { position: relative; background: #fff; border: 1px solid #ddd; border-radius: 8px; }
#hv-canvas { display: block; width: 100%; height: 62vh; min-height: 280px; touch-action: none; }
.bar { display: flex; flex-wrap: wrap; gap: 6px; padding: 6px; }
.bar button { font-size: 16px; padding: 8px 14px; border-radius: 18px; border: 1px solid #bbb;
  background: #f2f2f2; color: #222; }
.bar button[aria-pressed="true"] { background: #2e5e8b; color: #fff; border-color: #2e5e8b; }
.state { position: absolute; top: 8px; left: 10px; font-weight: 700; font-size: 18px;
  color: #2e5e8b; pointer-events: none; }
.legend { font-size: 13px; color: #555; padding: 0 8px 8px; }
.sw { display: inline-block; width: 12px; height: 12px; border-radius: 3px;
  vertical-align: -1px; margin: 0 3px 0 8px; }
table.facts { border-collapse: collapse; font-size: 15px; }
table.facts th { text-align: left; padding: 3px 12px 3px 0; font-weight: 600; vertical-align: top; }
ol.steps { padding-left: 22px; } ol.steps li { margin-bottom: 10px; }
ol.steps p { margin: 0; font-size: 16px; }
.warn { color: #a04000; font-size: 14px; }
footer { color: #777; font-size: 12px; margin-top: 24px; }
.table-wrap { overflow-x: auto; }
"""

_JS = r"""
(function () {
  "use strict";
  var THREE = window.HIPVIZ_THREE;
  var data = JSON.parse(document.getElementById("hv-data").textContent);
  function bytes(s) {
    var bin = atob(s), u = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
    return u;
  }
  var canvas = document.getElementById("hv-canvas");
  var renderer = new THREE.WebGLRenderer({canvas: canvas, antialias: true,
                                          preserveDrawingBuffer: true});
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  var scene = new THREE.Scene();
  scene.background = new THREE.Color(0xffffff);
  var camera = new THREE.PerspectiveCamera(30, 1, 5, 5000);
  camera.up.set(0, 0, 1);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x777777, 1.6));
  var lamp = new THREE.DirectionalLight(0xffffff, 1.8);
  lamp.position.set(0.3, 0.5, 1);
  camera.add(lamp);
  scene.add(camera);
  var meshes = [], box = new THREE.Box3();
  data.pieces.forEach(function (p) {
    var g = new THREE.BufferGeometry();
    var pos = new Float32Array(bytes(p.positions).buffer);
    var raw = bytes(p.index).buffer;
    var idx = p.index_type === "uint16" ? new Uint16Array(raw) : new Uint32Array(raw);
    g.setAttribute("position", new THREE.BufferAttribute(pos, 3));
    g.setIndex(new THREE.BufferAttribute(idx, 1));
    g.computeVertexNormals();
    var colored = !!p.colors_before;
    var m = new THREE.MeshLambertMaterial({color: colored ? 0xffffff : p.color,
                                          vertexColors: colored});
    var mesh = new THREE.Mesh(g, m);
    mesh.matrixAutoUpdate = false;
    mesh.userData = p;
    if (colored) {
      p.cb = new THREE.BufferAttribute(bytes(p.colors_before), 3, true);
      p.ca = new THREE.BufferAttribute(bytes(p.colors_after || p.colors_before), 3, true);
    }
    scene.add(mesh);
    meshes.push(mesh);
    g.computeBoundingBox();
    box.union(g.boundingBox);
  });
  function lineGroup(lines) {
    var grp = new THREE.Group();
    lines.forEach(function (l) {
      var g = new THREE.BufferGeometry();
      g.setAttribute("position", new THREE.BufferAttribute(new Float32Array(l.points), 3));
      var mat = new THREE.LineBasicMaterial({color: l.color, depthTest: false});
      var line = new THREE.Line(g, mat);
      line.renderOrder = 10;
      grp.add(line);
    });
    scene.add(grp);
    return grp;
  }
  var linesBefore = lineGroup(data.lines_before), linesAfter = lineGroup(data.lines_after);
  var target = new THREE.Vector3().fromArray(data.target);
  var radius = box.getSize(new THREE.Vector3()).length() / 2;
  // Open on the hip joint (about 26 cm across); zoom out for the whole bones.
  var home = {az: Math.PI / 2, el: 0.15, dist: Math.min(radius, 130) / Math.sin(Math.PI / 12)};
  var view = Object.assign({}, home);
  var pending = false;
  function draw() {
    pending = false;
    var w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * renderer.getPixelRatio())) {
      renderer.setSize(w, h, false);
    }
    camera.aspect = w / h;
    var fit = Math.min(1, camera.aspect);
    camera.updateProjectionMatrix();
    var d = view.dist / fit, ce = Math.cos(view.el);
    camera.position.set(target.x + d * ce * Math.cos(view.az),
                        target.y + d * ce * Math.sin(view.az),
                        target.z + d * Math.sin(view.el));
    camera.lookAt(target);
    renderer.render(scene, camera);
  }
  function redraw() { if (!pending) { pending = true; requestAnimationFrame(draw); } }
  var stateLabel = document.getElementById("hv-state");
  function show(after) {
    meshes.forEach(function (mesh) {
      var p = mesh.userData;
      mesh.matrix.fromArray(after ? p.pose_after : p.pose_before);
      mesh.matrixWorldNeedsUpdate = true;
      if (p.cb) mesh.geometry.setAttribute("color", after ? p.ca : p.cb);
    });
    linesBefore.visible = !after;
    linesAfter.visible = after;
    document.getElementById("hv-before").setAttribute("aria-pressed", String(!after));
    document.getElementById("hv-after").setAttribute("aria-pressed", String(after));
    stateLabel.textContent = after ? "After" : "Before";
    document.body.setAttribute("data-state", after ? "after" : "before");
    redraw();
  }
  document.getElementById("hv-before").onclick = function () { show(false); };
  document.getElementById("hv-after").onclick = function () { show(true); };
  var lateral = data.side === "right" ? 0 : Math.PI;
  document.getElementById("hv-front").onclick = function () {
    view = Object.assign({}, home); redraw();
  };
  document.getElementById("hv-side").onclick = function () {
    view = Object.assign({}, home, {az: lateral}); redraw();
  };
  var pointers = new Map(), spread = 0;
  function gap() {
    var p = Array.from(pointers.values());
    return Math.hypot(p[0].x - p[1].x, p[0].y - p[1].y);
  }
  canvas.addEventListener("pointerdown", function (e) {
    canvas.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, {x: e.clientX, y: e.clientY});
    if (pointers.size === 2) spread = gap();
  });
  canvas.addEventListener("pointermove", function (e) {
    var p = pointers.get(e.pointerId);
    if (!p) return;
    var dx = e.clientX - p.x, dy = e.clientY - p.y;
    p.x = e.clientX; p.y = e.clientY;
    if (pointers.size === 1) {
      view.az -= dx * 0.008;
      view.el = Math.max(-1.5, Math.min(1.5, view.el + dy * 0.008));
    } else if (pointers.size === 2) {
      var s = gap();
      if (spread > 0 && s > 0) zoom(spread / s);
      spread = s;
    }
    redraw();
  });
  function up(e) { pointers.delete(e.pointerId); spread = pointers.size === 2 ? gap() : 0; }
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);
  function zoom(f) { view.dist = Math.max(60, Math.min(4 * home.dist, view.dist * f)); }
  canvas.addEventListener("wheel", function (e) {
    e.preventDefault(); zoom(Math.exp(e.deltaY * 0.001)); redraw();
  }, {passive: false});
  window.addEventListener("resize", redraw);
  show(false);
  window.hipvizHandout = {show: show, meshes: meshes.length, triangles: data.triangles};
})();
"""


def handout_html(
    sim: Simulation,
    outcome: Outcome | None,
    *,
    result: Mapping[str, Any] | None = None,
    facts: Sequence[tuple[str, str]] = (),
    title: str = "Your hip plan",
    date: _dt.date | None = None,
    max_triangles: int = HANDOUT_TRIANGLES,
) -> str:
    """The whole handout: one self-contained HTML page (UTF-8 text).

    Parameters
    ----------
    sim, outcome
        The hip as planned (``outcome`` None: no move; "after" is "before").
    result : mapping, optional
        ``before``/``after`` measures, ``plan`` and ``warnings`` as
        ``hipviz simulate --json`` gives them (with any load keys); default
        ``outcome.as_dict()`` (or the hip's own measures without a move).
    facts : sequence of (label, value)
        Lines about the plan and the hip (:func:`hipviz.report.plan_facts`);
        escaped, so file names may contain anything.
    title : str
        Page heading (escaped).
    date : datetime.date, optional
        The date printed on the page (default today).
    max_triangles : int
        Triangle budget of the 3D view (:data:`HANDOUT_TRIANGLES`).
    """
    esc = html.escape
    if result is None:
        result = (
            outcome.as_dict()
            if outcome is not None
            else {"before": dict(sim.before), "plan": {}, "warnings": []}
        )
    before = result["before"]
    after = result.get("after") if outcome is not None else None
    rows = report.measure_rows(before, after)
    # a load's rows (--load, or the app's Load view) when the result carries them
    loaded = [m.key for m in LOAD_MEASURES if _has(before, m.key)]
    if loaded:
        rows += report.measure_rows(before, after, keys=loaded)
    warnings = [*report.impossible_warnings(rows), *result.get("warnings", [])]
    payload = json.dumps(mesh_payload(sim, outcome, max_triangles=max_triangles))
    # A JSON string never holds a raw "<", so "</script>" cannot end the block early.
    payload = payload.replace("<", "\\u003c")
    day = (date or _dt.date.today()).isoformat()
    fact_html = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    warn = "".join(f"<li>{esc(w)}</li>" for w in warnings)
    kind = explain_kind(result.get("plan") or {})
    three = vendored("three.cjs")
    licence = vendored("three.LICENSE").replace("*/", "* /")
    from . import __version__

    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{_CSS}{report.TABLE_CSS}</style></head>
<body data-state="before"><main>
<h1>{esc(title)}</h1>
<div class="sub">Made on <time datetime="{day}">{day}</time> with hipviz {esc(__version__)}</div>
<p class="disclaimer">{esc(DISCLAIMER)}</p>
<section id="hv-view"><div class="state" id="hv-state">Before</div>
<canvas id="hv-canvas" aria-label="The hip in 3D: drag to turn, pinch or scroll to zoom">
</canvas>
<div class="bar">
<button id="hv-before" type="button" aria-pressed="true">Before</button>
<button id="hv-after" type="button" aria-pressed="false">After</button>
<button id="hv-front" type="button">Front view</button>
<button id="hv-side" type="button">Side view</button></div>
<div class="legend">Drag to turn, pinch or scroll to zoom. Ball of the thigh bone:
<span class="sw" style="background:#2e8b57"></span>covered by the socket
<span class="sw" style="background:#d6604d"></span>not covered;
<span class="sw" style="background:#e0a96d"></span>the piece of bone that is moved.</div>
</section>
<h2>The plan</h2>
<table class="facts">{fact_html}</table>
{f'<ul class="warn">{warn}</ul>' if warn else ""}
<h2>Your measures</h2>
<p class="sub">Before → after; the colour says whether a value is in the usual range
(green), borderline (amber) or outside it (red). Tap a line for what it means.</p>
<div class="table-wrap">{report.table_html(rows, details=True)}</div>
<h2>The operation, step by step</h2>
{_steps_html(kind, before)}
<footer>{esc(DISCLAIMER)} Made with hipviz {esc(__version__)}; the 3D view uses
three.js {THREE_VERSION} (MIT licence, notice below in the page source).</footer>
</main>
<script type="application/json" id="hv-data">{payload}</script>
<script>
/* three.js {THREE_VERSION}, https://threejs.org, licence:
{licence}*/
(function () {{ var exports = {{}};
{three}
window.HIPVIZ_THREE = exports; }})();
</script>
<script>{_JS}</script>
</body></html>
"""


def _has(values: Mapping[str, Any], key: str) -> bool:
    return lookup(dict(values), key) is not None


def write_handout(path, text: str) -> int:
    """Write a handout's text to ``path`` (UTF-8); its size in bytes."""
    data = text.encode("utf-8")
    with open(path, "wb") as fh:
        fh.write(data)
    return len(data)


__all__ = [
    "CSP",
    "DISCLAIMER",
    "HANDOUT_TRIANGLES",
    "THREE_VERSION",
    "explain_kind",
    "handout_html",
    "mesh_payload",
    "vendored",
    "write_handout",
]
