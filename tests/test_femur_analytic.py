"""Exact femoral answers on stick femurs built to break a neck axis.

Each femur has a greater-trochanter block rising beside its neck base and
merging with the neck there (:meth:`hipviz.datasets.Trochanter.beside_neck`),
as a real greater trochanter and intertrochanteric crest do. Sections of the
neck near its base take in trochanteric bone; a neck axis that sees it reads
the neck-shaft angle and version several degrees off (up to 12 degrees with
the section-centroid axis hipviz used before). The expected values are the
construction parameters.
"""

import itertools

import numpy as np
import pytest

from hipviz import datasets, hip

ANGLE_TOL = 0.5  # degrees, as the issue asks

#: (radius mm, top as a fraction of the head centre's height, clearance mm, anterior mm)
TROCHANTERS = {
    "slim-high": (12.0, 0.9, 1.0, 0.0),
    "broad-anterior": (18.0, 0.7, 2.0, 6.0),
    "big-posterior": (22.0, 0.9, 3.0, -6.0),
}
NECK_SHAFT = (110.0, 125.0, 140.0, 150.0)
VERSION = (-15.0, 15.0, 45.0)
NECK_LENGTH = (45.0, 60.0)  # short and long necks, head centre to the junction

CASES = [
    pytest.param(t, nsa, ver, nl, id=f"{t}-nsa{nsa:g}-v{ver:g}-neck{nl:g}")
    for t, nsa, ver, nl in itertools.product(TROCHANTERS, NECK_SHAFT, VERSION, NECK_LENGTH)
]


def _femur(trochanter: str, nsa: float, ver: float, neck_length: float, side: str):
    radius, top, clearance, anterior = TROCHANTERS[trochanter]
    block = datasets.Trochanter.beside_neck(
        neck_shaft_deg=nsa,
        version_deg=ver,
        neck_length_mm=neck_length,
        radius_mm=radius,
        top_fraction=top,
        clearance_mm=clearance,
        anterior_mm=anterior,
    )
    femur = datasets.stick_femur(
        neck_shaft_deg=nsa,
        version_deg=ver,
        neck_length_mm=neck_length,
        trochanter=block,
        segments=80,
    )
    return datasets.mirror_x(femur) if side == "left" else femur


@pytest.mark.slow
@pytest.mark.parametrize(("trochanter", "nsa", "ver", "neck_length"), CASES)
def test_neck_axis_ignores_the_trochanter(trochanter, nsa, ver, neck_length):
    # Alternate sides so both are covered without doubling the family.
    side = "left" if (NECK_SHAFT.index(nsa) + VERSION.index(ver)) % 2 else "right"
    fl = hip.femur_landmarks(_femur(trochanter, nsa, ver, neck_length, side))
    values, _ = hip.femoral_angles(
        -fl.toward_neck, fl.shaft.direction, fl.anterior, fl.medial, None
    )
    assert fl.side == side
    assert values["neck_shaft_deg"] == pytest.approx(nsa, abs=ANGLE_TOL)
    assert values["femoral_version_deg"] == pytest.approx(ver, abs=ANGLE_TOL)
    # Every femoral angle is taken in the femoral coronal plane: exact too.
    assert values["neck_shaft_projected_deg"] == pytest.approx(
        _projected_nsa(nsa, ver), abs=ANGLE_TOL
    )


def _projected_nsa(nsa: float, ver: float) -> float:
    n, v = np.radians(nsa), np.radians(ver)
    to_head = np.array([-np.sin(n) * np.cos(v), 0.0, -np.cos(n)])  # drop the anterior part
    return float(np.degrees(np.arccos(to_head @ [0.0, 0.0, -1.0] / np.linalg.norm(to_head))))


def test_the_family_breaks_a_base_section_axis():
    """The trochanter really enters sections at 1.0-1.5 head radii (the old axis's levels)."""
    from hipviz import landmarks as lmk

    f = _femur("big-posterior", 140.0, 15.0, 60.0, "right")
    head, _ = lmk.find_head(f)
    n, v = np.radians(140.0), np.radians(15.0)
    axis = -np.array([-np.sin(n) * np.cos(v), np.sin(n) * np.sin(v), -np.cos(n)])
    neck_area = np.pi * 14.0**2
    areas = [
        lmk.section_through(f, head.center_mm + t * head.radius_mm * axis, axis)[1]
        for t in (1.8, 2.0)
    ]
    whole = [
        lmk.section_centroid(f, head.center_mm + t * head.radius_mm * axis, axis)[1]
        for t in (1.0, 1.5)
    ]
    assert max(areas) > 1.05 * neck_area or max(whole) > 1.05 * neck_area


@pytest.mark.parametrize("frame", ["auto", "ras", "lps"])
def test_femoral_measures_do_not_depend_on_the_declared_frame(frame):
    """The femur's anatomy fixes its anterior and side; a frame cannot flip a version."""
    f = _femur("broad-anterior", 130.0, 20.0, 55.0, "right")
    a = hip.analyze(None, f, frame=frame)
    assert a.values["femoral_version_deg"] == pytest.approx(20.0, abs=ANGLE_TOL)
    assert a.values["neck_shaft_deg"] == pytest.approx(130.0, abs=ANGLE_TOL)
    contradiction = any("points to the front of the femur" in w for w in a.warnings)
    # The stick femur is built in RAS: declaring LPS contradicts its anatomy.
    assert contradiction == (frame == "lps")


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("drop", [0.0, 8.0, 15.0])
def test_a_lower_medial_condyle_keeps_the_side_and_the_version(side, drop):
    """Which condyle is medial is read across the shaft, not along it.

    Each posterior contact point can lie anywhere along its condyle's posterior
    line, so the two differ along the shaft too (on a coarse real surface by
    10 mm or more); read along the shaft that difference outweighed the head's
    medial offset and swapped the condyles: the femur read as the other side
    and its version 180° off.
    """
    femur = datasets.stick_femur(
        neck_shaft_deg=125.0, version_deg=15.0, medial_condyle_drop_mm=drop, segments=64
    )
    femur = datasets.mirror_x(femur) if side == "left" else femur
    fl = hip.femur_landmarks(femur)
    assert fl.side == side
    a = hip.analyze(None, femur, frame="auto")
    assert a.values["femoral_version_deg"] == pytest.approx(15.0, abs=ANGLE_TOL)
