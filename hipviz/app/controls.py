"""The left column of the page: which hip, which operation, and the upload.

:class:`Controls` builds the widgets that set the :class:`~hipviz.app.state.Plan`
(hip, side, posture, shape modes, procedure, fragment and femoral sliders,
cut adjustments) and the upload card. It changes nothing but the plan; the
app watches the plan and does the rest. Uploaded files are handed over by
:meth:`Controls.take_upload`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import panel as pn
import param

from hipviz import cases
from hipviz import osteotomy as ost
from hipviz.errors import InputError

from .state import (
    ANATOMY_PARAMS,
    BUILTIN,
    CUT_PARAMS,
    STANDING_TILT_DEG,
    UPLOAD,
    UPLOAD_SUFFIXES,
    Plan,
    parse_labels,
)
from .text import NAME_CHARS, clamp, inert, inert_join, size_over
from .widgets import CSS, UploadGuard, UploadInput, live_slider, throttled_slider

CASE_LABELS = {
    **{name: f"{info.title} (teaching case)" for name, info in cases.CASES.items()},
    BUILTIN: "Built-in mean shape (shape modes)",
    UPLOAD: "Your own meshes (upload)",
}
PROCEDURE_LABELS = {"none": "No pelvic osteotomy"} | {k: p.title for k, p in ost.PROCEDURES.items()}


class Controls(pn.viewable.Viewer):
    """Hip, osteotomy and upload controls of one page, bound to its plan.

    Parameters
    ----------
    plan : Plan
        The page's plan; the sliders and pickers set it and follow it.
    max_file_mb : float
        Largest file the page may send, MB (the server's upload limit).
    on_upload : callable
        Called with no argument when *Load my meshes* is pressed.
    on_error : callable
        Shows one line of error text (a file refused in the browser).
    receiver : HipSession, optional
        Where files chosen in the browser are sent, in pieces, as soon as
        they are chosen (:class:`~hipviz.app.widgets.UploadGuard`); without
        one they go by Panel's file inputs, whole, when chosen.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        max_file_mb: float,
        on_upload: Callable[[], None],
        on_error: Callable[[str], None],
        receiver: Any = None,
        **params: Any,
    ):
        super().__init__(**params)
        self.plan = plan
        self._on_error = on_error
        self.guard = UploadGuard(
            receiver=receiver, max_bytes=int(max_file_mb * 1e6), width=0, height=0, margin=0
        )
        self.guard.param.watch(self._on_refused, "refused")
        self.guard.param.watch(self._on_failed, "failed")
        # the progress lines quote file names: shown through text.inert
        self.upload_progress = pn.pane.HTML(
            "", stylesheets=[CSS], sizing_mode="stretch_width", css_classes=["hv-sub"]
        )
        self.guard.param.watch(
            lambda e: setattr(self.upload_progress, "object", inert_join(e.new.splitlines())),
            "progress",
        )
        self.source = pn.pane.HTML(
            "", stylesheets=[CSS], sizing_mode="stretch_width", css_classes=["hv-sub"]
        )
        self.procedure_text = pn.pane.HTML(
            "", stylesheets=[CSS], sizing_mode="stretch_width", css_classes=["hv-sub"]
        )
        self._build_widgets(max_file_mb)
        self.w_load.on_click(lambda _: on_upload())
        self.plan.param.watch(self._on_anatomy, list(ANATOMY_PARAMS))

    def _build_widgets(self, max_file_mb: float) -> None:
        plan = self.plan
        self.w_case = pn.widgets.Select.from_param(
            plan.param.case,
            options={v: k for k, v in CASE_LABELS.items()},
            label="Hip",
            sizing_mode="stretch_width",
        )
        self.w_side = pn.widgets.RadioButtonGroup.from_param(
            plan.param.side, options={"Left hip": "left", "Right hip": "right"}, label=""
        )
        self.w_posture = pn.widgets.RadioButtonGroup(
            label="Posture", options=["Lying (supine)", "Standing"], value="Lying (supine)"
        )
        self.w_posture.param.watch(self._on_posture, "value")
        self.w_tilt = throttled_slider(plan, "tilt")
        self.w_tilt.param.watch(self._sync_posture, "value")
        self.w_modes = pn.Column(
            *[throttled_slider(plan, f"mode{i + 1}") for i in range(5)],
            visible=plan.case == BUILTIN,
        )
        self.w_procedure = pn.widgets.Select.from_param(
            plan.param.procedure,
            options={v: k for k, v in PROCEDURE_LABELS.items()},
            label="Pelvic osteotomy",
            sizing_mode="stretch_width",
        )
        self.pao_sliders = pn.Column(
            *[live_slider(plan, k) for k in ("pao_lateral", "pao_anterior", "pao_version")],
            live_slider(plan, "pao_medial"),
        )
        self.fem_sliders = pn.Column(
            *[live_slider(plan, k) for k in ("fem_varus", "fem_flexion", "fem_rotation")],
            throttled_slider(plan, "fem_level"),
        )
        cut_widgets = [live_slider(plan, k) for k in CUT_PARAMS]
        self.cut_card = pn.Card(
            *cut_widgets, title="Cut adjustments", collapsed=True, sizing_mode="stretch_width"
        )
        self.w_reset = pn.widgets.Button(label="Reset moves and cuts", color="default")
        self.w_reset.on_click(lambda _: self.plan.reset_moves())

        # uploads
        accept = ",".join(UPLOAD_SUFFIXES)
        # the css classes tell the browser's sender which bone a file is
        self.w_pelvis_file = UploadInput(
            accept=accept, label="Pelvis", css_classes=["hv-file-pelvis"]
        )
        self.w_femur_file = UploadInput(accept=accept, label="Femur", css_classes=["hv-file-femur"])
        self.w_pelvis_labels = pn.widgets.TextInput(
            label="Pelvis labels (label maps only)", placeholder="e.g. 1,2"
        )
        self.w_femur_labels = pn.widgets.TextInput(
            label="Femur labels (label maps only)", placeholder="e.g. 3"
        )
        self.w_load = pn.widgets.Button(label="Load my meshes", color="primary")
        self.upload_card = pn.Card(
            pn.pane.Markdown(
                f"STL, PLY, OBJ, OFF, VTP, VTK, GLB or a NIfTI label map, up to "
                f"{max_file_mb:g} MB each, in mm or m. Files stay in a "
                "private temporary folder for this browser tab and are deleted when it "
                "closes or the server stops.",
                css_classes=["hv-sub"],
            ),
            pn.Row(pn.pane.Markdown("**Pelvis**", width=60), self.w_pelvis_file),
            self.w_pelvis_labels,
            pn.Row(pn.pane.Markdown("**Femur**", width=60), self.w_femur_file),
            self.w_femur_labels,
            self.upload_progress,
            self.w_load,
            title="Your own meshes",
            collapsed=True,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.pane.Markdown("### Hip", margin=(0, 8)),
            self.w_case,
            self.w_side,
            self.source,
            pn.pane.Markdown("Posture", margin=(0, 8)),
            self.w_posture,
            self.w_tilt,
            self.w_modes,
            self.upload_card,
            pn.pane.Markdown("### Osteotomy", margin=(0, 8)),
            self.w_procedure,
            self.procedure_text,
            pn.pane.Markdown("**Acetabular fragment**", margin=(0, 8)),
            self.pao_sliders,
            pn.pane.Markdown("**Femur (intertrochanteric)**", margin=(0, 8)),
            self.fem_sliders,
            self.cut_card,
            self.w_reset,
            width=330,
            scroll=True,
            sizing_mode="stretch_height",
            styles={"border-right": "1px solid #eee"},
        )

    # ------------------------------------------------------------------ shown text

    def show_source(self, text: str) -> None:
        """Where the hip shown comes from (a case, the shape model, file names): as text."""
        self.source.object = inert(text)

    def describe_procedure(self) -> None:
        """The chosen procedure's plain description under its picker."""
        proc = self.plan.procedure
        text = "" if proc == "none" else inert(ost.PROCEDURES[proc].description)
        self.procedure_text.object = text

    def build_widgets(self) -> list:
        """The widgets that start a new build (hip, side, posture, shape modes, upload).

        The app disables them while a hip is being built.
        """
        return [
            self.w_case,
            self.w_side,
            self.w_posture,
            self.w_tilt,
            *self.w_modes,
            self.w_pelvis_file,
            self.w_femur_file,
            self.w_pelvis_labels,
            self.w_femur_labels,
            self.w_load,
        ]

    # ------------------------------------------------------------------ posture

    def _on_anatomy(self, *events: param.parameterized.Event) -> None:
        self.w_modes.visible = self.plan.case == BUILTIN
        self._sync_posture()

    def _on_posture(self, event: param.parameterized.Event) -> None:
        standing = event.new == "Standing"
        if standing and self.plan.tilt == 0:
            self.plan.tilt = STANDING_TILT_DEG
        elif not standing:
            self.plan.tilt = 0.0

    def _sync_posture(self, *events: param.parameterized.Event) -> None:
        self.w_posture.value = "Lying (supine)" if self.plan.tilt == 0 else "Standing"

    # ------------------------------------------------------------------ upload

    def take_upload(self) -> tuple[dict[str, tuple[str, Any]], tuple]:
        """The chosen files and label lists, taken from the inputs, which are cleared.

        Returns
        -------
        chosen : dict
            ``"pelvis"`` and ``"femur"`` -> (file name, content): a Path in the
            session's folder for a file that the browser sent in pieces, else
            the content as Panel's input received it. One label map holding
            both bones, chosen as the pelvis alone, is given for both.
        labels : tuple
            The pelvis's and the femur's labels (label maps), or None each.

        Raises
        ------
        HipvizError
            If a file is missing or still arriving, or a label list cannot be
            read. The inputs are cleared either way, but for a file still
            arriving (pressing Load again once it has arrived is enough).
        """
        arriving = self.guard.still_arriving()
        if arriving:
            msg = "; ".join(arriving) + ": press Load when it has arrived"
            raise InputError(msg)
        try:
            arrived = self.guard.take()
            chosen = {}
            for role, widget in (("pelvis", self.w_pelvis_file), ("femur", self.w_femur_file)):
                name, data = widget.filename or role, widget.value
                if widget.filename and not data:  # Panel passes an empty file as None
                    data = b""
                if role in arrived:
                    name, data = arrived[role]
                if data is None and role == "femur" and ".nii" in chosen["pelvis"][0].lower():
                    name, data = chosen["pelvis"]  # one label map holding both bones
                if data is None:
                    msg = f"choose a {role} file first"
                    raise InputError(msg)
                chosen[role] = (name, data)
            labels = (
                parse_labels(self.w_pelvis_labels.value, "pelvis"),
                parse_labels(self.w_femur_labels.value, "femur"),
            )
        except InputError:
            for _, path in arrived.values():  # the inputs are cleared: choose again
                path.unlink(missing_ok=True)
            raise
        finally:
            for widget in (self.w_pelvis_file, self.w_femur_file):
                widget.clear()  # in the browser
                # and here, now: a 60 MB file is 80 MB of text, held by the job alone
                widget.param.update(value=None, filename=None, mime_type=None)
        return chosen, labels

    def received(self) -> dict[str, str]:
        """Names of the chosen files the server holds whole, by role (``"pelvis"``, ``"femur"``)."""
        held = {
            role: widget.filename
            for role, widget in (("pelvis", self.w_pelvis_file), ("femur", self.w_femur_file))
            if widget.filename
        }
        return held | self.guard.arrived()

    def _on_refused(self, event: param.parameterized.Event) -> None:
        name, size, _ = (event.new.split("\t") + ["", "", ""])[:3]
        if not name:
            return
        cap = self.guard.max_bytes / 1e6  # the limit the page checked against
        self._on_error(
            f"{clamp(name, NAME_CHARS)}: {size_over(int(size), cap)} is over the {cap:g} MB upload "
            "limit (raise it with hipviz serve --max-file-mb); it was not sent"
        )

    def _on_failed(self, event: param.parameterized.Event) -> None:
        message = event.new.rpartition("\t")[0]
        if message:
            self._on_error(message)
