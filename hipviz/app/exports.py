"""The page's downloads: picture, measures, plan, moved bones and report.

:class:`Exports` offers the current plan and its measures as files: a PNG
rendered on the server from the current view preset, the measures as CSV,
the plan with every measure before and after as JSON (the keys of
``hipviz simulate --json`` plus ``plan`` and ``source``), the moved bones as
STL (zipped), a one-page HTML report, the patient's handout (one
self-contained HTML file, :mod:`hipviz.handout`) and the A4 PDF report of
``hipviz report``. The PNG and the PDF's "your view" pictures are drawn from
the camera the user turned to in the browser. Each file is made in a worker
thread.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import zipfile
from collections.abc import Callable
from typing import Any

import panel as pn

from hipviz import handout, render, report
from hipviz.errors import HipvizError

from .controls import PROCEDURE_LABELS
from .scene import SceneDriver
from .state import PageState
from .workers import BUILD_POOL, EXPORT_LOCK

log = logging.getLogger("hipviz.app")


class Exports(pn.viewable.Viewer):
    """The download buttons of one page.

    Parameters
    ----------
    page : PageState
        The page's plan and session (what is exported).
    scene : SceneDriver
        Whether screws and plate are shown (exported with the picture and bones).
    load_view : LoadView, optional
        The contact pressure: with a load chosen, its rows join the measures
        (CSV, report) and the report shows the pressure before and after.
    on_error : callable, optional
        Shows one line of error text on the page (an export that failed,
        named by its button); the failure is logged too.
    """

    def __init__(
        self,
        page: PageState,
        scene: SceneDriver,
        *,
        load_view: Any = None,
        on_error: Callable[[str], None] | None = None,
        **params: Any,
    ):
        super().__init__(**params)
        self.page = page
        self.scene = scene
        self.load_view = load_view
        self._on_error = on_error
        self.buttons = [
            pn.widgets.FileDownload(
                callback=self._in_worker(fn, label), filename=filename, label=label, color="light"
            )
            for fn, filename, label in (
                (self._png, "hipviz.png", "Picture (PNG)"),
                (self._csv, "hipviz-measures.csv", "Measures (CSV)"),
                (self._json, "hipviz-plan.json", "Plan + measures (JSON)"),
                (self._stl, "hipviz-meshes.zip", "Moved bones (STL, zip)"),
                (self._report, "hipviz-report.html", "Report (HTML)"),
                (self._handout, "hipviz-handout.html", "Handout (HTML)"),
                (self._report_pdf, "hipviz-report.pdf", "Report (PDF)"),
            )
        ]

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.FlexBox(*self.buttons)

    def _in_worker(self, export: Callable[[], io.BytesIO], label: str = "export") -> Callable:
        """``export`` as a download callback that runs in a worker thread.

        A picture or a report takes seconds of rendering: off the event loop.
        The session's lock keeps a cut from changing the pieces meanwhile,
        and one rendering runs at a time (VTK's off-screen windows). A
        failure reaches the page as one line naming the button
        (:func:`export_error`), then goes on to Panel, which logs it.
        """

        def run() -> io.BytesIO:
            with EXPORT_LOCK, self.page.session.lock:
                return export()

        async def callback() -> io.BytesIO:
            try:
                if self.page.doc is None:
                    return run()
                return await asyncio.wrap_future(BUILD_POOL.submit(run))
            except Exception as exc:
                if not isinstance(exc, HipvizError):
                    log.error("%s failed", label, exc_info=exc)
                if self._on_error is not None:
                    self._on_error(export_error(label, exc))
                raise

        return callback

    def _rows(self):
        out = self.page.session.outcome
        rows = report.measure_rows(out.before, out.after)
        return rows + (self.load_view.rows(out) if self.load_view is not None else [])

    def _csv(self) -> io.BytesIO:
        return io.BytesIO(report.measures_csv(self._rows()).encode())

    def _json(self) -> io.BytesIO:
        out = self.page.session.outcome
        data = {"plan": self.page.plan.query(), "source": self.page.session.source, **out.as_dict()}
        return io.BytesIO(json.dumps(data, indent=2).encode())

    def _scene(self, after: bool, **kwargs: Any) -> render.Scene:
        sim, out = self.page.session.sim, self.page.session.outcome
        return render.scene(sim, out if after else None, **kwargs)

    def camera(self) -> tuple[tuple | None, float | None]:
        """The browser's camera and the zoom that draws it as seen, or (None, None).

        ``render.picture`` draws with a 30 degree view angle before zooming, so
        the zoom is 30 / the browser's view angle (1 for vtk.js's default).
        """
        view3d = self.scene.view3d
        if view3d.camera is None:
            return None, None
        return view3d.camera, 30.0 / view3d.view_angle

    def _png(self) -> io.BytesIO:
        plan = self.page.plan
        camera, zoom = self.camera()
        img = render.picture(
            self._scene(True, fixation=self.scene.fixation, labels=plan.mode == "student"),
            view=plan.view,
            window_size=(1200, 900),
            zoom=2.0 if camera is None else zoom,
            camera_position=camera,
        )
        return io.BytesIO(render.png_bytes(img))

    def _result(self) -> dict[str, Any]:
        """The plan as ``hipviz simulate --json`` gives it, and the load's keys when chosen."""
        out = self.page.session.outcome
        result = out.as_dict()
        state = self.load_view.state(out) if self.load_view is not None else None
        if state is not None:
            result["before"].update(state.before.values())
            result["after"].update(state.after.values())
        return result

    def _facts(self, result: dict[str, Any]) -> list[tuple[str, str]]:
        """The plan's lines (:func:`hipviz.report.plan_facts`), the hip as the page names it."""
        session = self.page.session
        hip = ("Hip", f"{session.source}, {session.sim.analysis.side} side")
        return [hip, *report.plan_facts(result)]  # no side, no sources: no second "Hip" line

    def _handout(self) -> io.BytesIO:
        session = self.page.session
        result = self._result()
        text = handout.handout_html(
            session.sim,
            session.outcome,
            result=result,
            facts=self._facts(result),
        )
        return io.BytesIO(text.encode("utf-8"))

    def _report_pdf(self) -> io.BytesIO:
        session = self.page.session
        out, sim = session.outcome, session.sim
        result = self._result()
        camera, zoom = self.camera()
        text = report.report_html(
            title="hipviz plan",
            subtitle=f"{sim.analysis.side} hip · made {time.strftime('%Y-%m-%d')} with hipviz",
            rows=self._rows(),
            pictures=report.plan_pictures(sim, out, camera=camera, camera_zoom=zoom),
            facts=self._facts(result),
            warnings=out.warnings,
            notes=report.METHOD_NOTES,
        )
        path = session.folder / "export" / "report.pdf"
        path.parent.mkdir(exist_ok=True)
        report.write_pdf(text, path)
        data = path.read_bytes()
        path.unlink()
        return io.BytesIO(data)

    def _stl(self) -> io.BytesIO:
        sim, out = self.page.session.sim, self.page.session.outcome
        folder = self.page.session.folder / "export"
        for old in folder.glob("*.stl"):
            old.unlink()
        paths = sim.export(folder, out, sim.fixation(out) if self.scene.fixation else None)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in paths:
                zf.write(p, p.name)
        buf.seek(0)
        return buf

    def _report(self) -> io.BytesIO:
        out = self.page.session.outcome
        before = self._scene(False, angles=True)
        after = self._scene(True, angles=True, fixation=True)
        size, zoom = (700, 560), 2.2
        pictures = {
            "Before (front)": render.picture(before, view="anterior", window_size=size, zoom=zoom),
            "After (front), before faint": render.picture(
                after, view="anterior", window_size=size, zoom=zoom, ghost=before
            ),
            "After (false profile)": render.picture(
                after, view="false_profile", window_size=size, zoom=zoom
            ),
        }
        more: dict = {}  # the pressure pictures, a second row
        if self.load_view is not None:
            pressure = self.load_view.report_pictures(
                {
                    "Contact pressure before (side, femur hidden; blue 0 to red 10 MPa)": (
                        render.scene(self.page.session.sim, None, angles=False),
                        False,
                    ),
                    "Contact pressure after (side, femur hidden; blue 0 to red 10 MPa)": (
                        render.scene(self.page.session.sim, out, angles=False),
                        True,
                    ),
                },
                out,
            )
            for caption, sc in pressure.items():
                more[caption] = render.picture(sc, view="lateral", window_size=size, zoom=zoom)
        plan = out.plan
        facts = [("Hip", f"{self.page.session.source}, {self.page.session.sim.analysis.side} side")]
        if plan["procedure"]:
            p = plan["pao"]
            facts.append(
                (
                    PROCEDURE_LABELS[plan["procedure"]],
                    f"lateral {p['lateral']:+g}°, anterior {p['anterior']:+g}°, "
                    f"version {p['version']:+g}°, medial {p['medial']:+g} mm",
                )
            )
        f = plan["femoral"]
        if f["level_mm"] is not None:
            facts.append(
                (
                    "Femoral osteotomy",
                    f"varus {f['varus']:+g}°, flexion {f['flexion']:+g}°, "
                    f"rotation {f['rotation']:+g}°, cut {f['level_mm']:.0f} mm below the head",
                )
            )
        facts.append(("Joint gap", f"{out.min_gap_mm:.1f} mm"))
        facts.append(("Leg length change", f"{out.leg_length_change_mm:+.1f} mm"))
        html_text = report.report_html(
            title="hipviz plan",
            subtitle="Pelvic tilt "
            f"{self.page.plan.tilt:g}° · link parameters: "
            + "&".join(f"{k}={v}" for k, v in self.page.plan.query().items()),
            rows=self._rows(),
            pictures={k: render.png_bytes(v) for k, v in pictures.items()},
            pictures_below={k: render.png_bytes(v) for k, v in more.items()},
            facts=facts,
            warnings=out.warnings,
        )
        return io.BytesIO(html_text.encode())


def export_error(label: str, exc: BaseException) -> str:
    """The one line a failed export shows: the button's name and what went wrong.

    Parameters
    ----------
    label : str
        The button's label, e.g. ``"Report (PDF)"``.
    exc : BaseException
        What the export raised; a :class:`~hipviz.errors.HipvizError` says
        it in the user's terms, anything else is quoted after "could not be made".

    Returns
    -------
    str
        Plain text, not yet made safe for a pane (the page shows it through
        :func:`hipviz.app.text.inert`).
    """
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, HipvizError):
        return f"{label}: {reason}"
    return f"{label} could not be made: {reason}"
