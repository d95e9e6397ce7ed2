"""docs/validation.md cannot drift: its measures, counts, tolerances and numbers are checked."""

import importlib.util
import re
from pathlib import Path

import pytest

from hipviz import hip
from hipviz.reference import MEASURES

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "validation.md").read_text(encoding="utf-8")


def _test_module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(heading: str) -> list[list[str]]:
    """Rows (cells stripped) of the first table after a ``## heading``."""
    part = DOC.split(f"## {heading}", 1)[1]
    rows = []
    for line in part.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the header


def test_every_measure_has_a_validation_row():
    keys = {row[0].strip("`") for row in _table("Per measure")}
    missing = [m.key for m in MEASURES if m.key not in keys]
    assert not missing, f"docs/validation.md has no row for {missing}"


def test_stated_case_counts_and_tolerances_are_the_tests_own():
    femurs = _test_module("test_femur_analytic")
    sockets = _test_module("test_measures_analytic")
    assert f"{len(femurs.CASES)} stick femurs" in DOC
    assert f"{len(sockets.OPENINGS)} socket openings" in DOC
    assert f"≤ {femurs.ANGLE_TOL}°" in DOC and f"≤ {sockets.ANGLE_TOL}°" in DOC
    remesh = _test_module("test_remeshing")
    assert f"alpha within {remesh.ALPHA_DEG}°" in DOC
    assert f"sphericity within {remesh.SPHERICITY_MM} mm" in DOC


def _measured(data: str) -> dict:
    if data == "LLP26 mean (built-in)":
        from hipviz.anatomy import builtin_hip

        h = builtin_hip()
        return hip.analyze(h.pelvis, h.femur).values
    folder = ROOT.parent / "shared" / "validation" / "lhdl_ct_staple"
    if not folder.exists():
        pytest.skip("the validation specimens (../shared/validation) are not here")
    from hipviz.io import load_mesh

    pelvis = load_mesh(str(folder / "pelvis_no_sacrum.ply")).mesh
    femur = load_mesh(str(folder / "femur_r.ply")).mesh
    return hip.analyze(pelvis, femur).values


@pytest.mark.slow
@pytest.mark.parametrize("data", ["LLP26 mean (built-in)", "LHDL CT specimen"])
def test_external_agreement_table_states_what_hipviz_measures(data):
    rows = [r for r in _table("Agreement with independent measurements") if r[0] == data]
    assert rows, f"no rows for {data}"
    values = _measured(data)
    for _, key, _, stated, _ in rows:
        key = key.strip("`")
        number = float(re.match(r"-?\d+(\.\d+)?", stated).group())
        assert values[key] == pytest.approx(number, abs=0.15), (data, key)
