"""The measures table, and the facts and warnings under the 3D view.

:class:`MeasuresTable` shows one :class:`hipviz.simulate.Outcome`: a row per
measure (before -> after once something moved), the joint gap, leg-length
change, hip-centre shift and cut contact, and the warnings (impossible values
first). It only displays; the app hands it each outcome to show.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import panel as pn

from hipviz import report

from .text import inert, inert_join
from .widgets import CSS


def _signed(x: float) -> str:
    """'+1.2' / '-0.4' / '0.0' (no '-0.0' for a rounding crumb)."""
    x = round(float(x), 1) + 0.0
    return f"{x:+.1f}" if x else "0.0"


class MeasuresTable(pn.viewable.Viewer):
    """The measures of one page.

    ``table`` goes in the right column, ``facts`` (joint gap, leg length,
    hip centre, cut contact) and ``warnings`` under the 3D view.
    """

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.table = pn.pane.HTML(
            "", stylesheets=[CSS], sizing_mode="stretch_width", css_classes=["hv-table"]
        )
        self.facts = pn.pane.HTML(
            "", stylesheets=[CSS], sizing_mode="stretch_width", css_classes=["hv-status"]
        )
        # Warnings quote file names: shown through text.inert, no maths
        self.warnings = pn.pane.Alert(
            "", alert_type="warning", visible=False, margin=(4, 8), disable_math=True
        )
        #: Rows other views add under the measures, each ``outcome -> list of report.Row``.
        self.more_rows: list = []

    def __panel__(self) -> pn.viewable.Viewable:
        return self.table

    def update(self, out: Any) -> None:
        """Show ``out`` (a :class:`hipviz.simulate.Outcome`): table, facts and warnings."""
        moved = out.plan["procedure"] is not None or out.plan["femoral"]["level_mm"] is not None
        rows = report.measure_rows(out.before, out.after if moved else None)
        more = [row for rows_of in self.more_rows for row in rows_of(out)]
        self.table.object = report.table_html([*rows, *more])
        shift = out.hip_center_shift_mm
        gap = out.min_gap_mm
        gap_text = "—" if not np.isfinite(gap) else f"{gap:.1f} mm"
        facts = []
        if moved:
            facts.append(f"leg length {_signed(out.leg_length_change_mm)} mm")
            facts.append(
                f"hip centre {_signed(shift[0])} lateral, {_signed(shift[1])} anterior, "
                f"{_signed(shift[2])} superior (mm)"
            )
            for where, con in out.contact.items():
                facts.append(f"{where} cut contact {100 * con.fraction:.0f}%")
        gap_html = f"Joint gap <b>{inert(gap_text)}</b>" + (" (overlap!)" if out.overlap else "")
        self.facts.object = " · ".join([gap_html, *(inert(f) for f in facts)])
        # Impossible values first: the table flags them, these lines say why.
        warnings = [*report.impossible_warnings(rows), *out.warnings]
        self.warnings.object = inert_join(warnings)
        self.warnings.visible = bool(warnings)

    def warn(self, message: str) -> None:
        """Replace the warnings with one line (as text, never as markup)."""
        self.warnings.object = inert(message)
        self.warnings.visible = True
