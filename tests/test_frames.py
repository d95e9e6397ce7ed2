"""The anterior pelvic plane on plausible pelvises: shape-model draws, the fallback, seating."""

import numpy as np
import pytest
import trimesh

from hipviz import anatomy, atlas, frames, hip
from hipviz.errors import LandmarkError

# Physiologically possible (not normal) ranges: a value outside is a broken pipeline.
POSSIBLE = {
    "lcea_deg": (-20.0, 80.0),
    "acetabular_version_deg": (-40.0, 60.0),
    "femoral_version_deg": (-40.0, 60.0),
    "neck_shaft_deg": (90.0, 170.0),
    "head_radius_mm": (14.0, 36.0),
}
# Seed-0 draws (clipped at 2.5 SD; row i of default_rng(0).standard_normal((n, 26))) that
# failed before: "could not find both ASIS and the pubic tubercles on the pelvis" (19, 27,
# 86, 151, 205) or "template fit 6.0-6.4 mm; is this a whole pelvis?" (119, 126, 140) ...
FRAME_FAILED = (19, 27, 86, 119, 126, 140, 151, 205)
# ... and femurs seated into the pelvis, by up to 14 mm (49, 91, 204, 239 and 272 in the
# other side's socket).
SEAT_FAILED = (29, 49, 52, 70, 91, 99, 118, 204, 239, 272, 286)


def shape_draws(n: int, *, seed: int = 0, clip: float = 2.5) -> np.ndarray:
    """(n, 26) weights in SD, as scripts/sweep_shapes.py and notebook 04 draw them."""
    return np.clip(np.random.default_rng(seed).standard_normal((n, atlas.N_MODES)), -clip, clip)


def measure_both_sides(weights: np.ndarray) -> dict[str, tuple[anatomy.BuiltinHip, dict]]:
    """Per side: the built (seated) hip and its analysis values.

    Checks on the way that the APP found is the plane the pelvis rests on:
    no bone in front of it (before, a frame could cut 1-6 mm into the bone).
    """
    out = {}
    for side in ("left", "right"):
        b = anatomy.builtin_hip(weights, side=side)
        a = hip.analyze(b.pelvis, b.femur)
        in_front = trimesh.transform_points(b.pelvis.vertices, a.tf_ras_input)[:, 1].max()
        assert in_front < 1e-6, f"bone {in_front:.2f} mm in front of the APP ({side})"
        out[side] = (b, a.as_dict())
    return out


def check_possible(values: dict, where: str) -> None:
    for key, (lo, hi) in POSSIBLE.items():
        assert values[key] is not None, f"{where}: {key} missing ({values['notes'].get(key)})"
        assert lo <= values[key] <= hi, f"{where}: {key} = {values[key]} outside {lo}..{hi}"


@pytest.fixture(scope="module")
def mean_pelvis():
    return anatomy.builtin_hip(side="left", subdivisions=8)


def _prior(points):
    s, r, t, _ = frames.register_template(points)
    return frames.template_prior(s, r, t)


def test_hull_and_tripod_rest_on_the_same_points(mean_pelvis):
    """Where the region search works, the fallback finds exactly the same supporting plane."""
    rng = np.random.default_rng(3)
    turn = trimesh.transformations.random_rotation_matrix(rng.random(3))
    turn[:3, 3] = [40.0, -300.0, 120.0]
    for tf in (np.eye(4), turn):
        pts = trimesh.transform_points(mean_pelvis.pelvis.vertices, tf)
        exp = _prior(pts)
        tripod = frames.tripod_app(pts, exp)
        hull = frames.hull_app(pts, exp)
        key = lambda p: tuple(np.round(p, 9))  # noqa: E731 - the ASIS come in either order
        assert sorted(map(key, tripod[:2])) == sorted(map(key, hull[:2]))
        np.testing.assert_array_equal(tripod[2], hull[2])
        # Nothing of the pelvis lies in front of that plane: it is a supporting plane.
        a, b, p = tripod
        n = np.cross(b - a, p - a)
        n *= np.sign(n @ (a - pts.mean(axis=0)))
        assert ((pts - a) @ n / np.linalg.norm(n)).max() < 1e-6


def test_frame_method_is_named(mean_pelvis):
    a = hip.analyze(mean_pelvis.pelvis, mean_pelvis.femur).as_dict()
    assert a["frame"] == "app"
    assert a["frame_method"] == frames.FRAME_METHODS["tripod"]
    assert not any("fallback" in w for w in a["warnings"])
    ras = hip.analyze(mean_pelvis.pelvis, mean_pelvis.femur, frame="ras").as_dict()
    assert ras["frame_method"] == frames.FRAME_METHODS["axes"]
    alone = hip.analyze(None, mean_pelvis.femur).as_dict()
    assert alone["frame"] == "femur" and alone["frame_method"] == frames.FRAME_METHODS["femur"]


def _without_pubis(b: anatomy.BuiltinHip, radius_mm: float) -> trimesh.Trimesh:
    """The pelvis with all bone within ``radius_mm`` of either pubic tubercle cut away."""
    v = np.asarray(b.pelvis.vertices)
    dist = np.min(
        [np.linalg.norm(v - b.landmarks[f"pubic_tubercle_{s}"], axis=1) for s in ("left", "right")],
        axis=0,
    )
    keep = (dist > radius_mm)[b.pelvis.faces].all(axis=1)
    out = trimesh.Trimesh(v, b.pelvis.faces[keep], process=False)
    out.remove_unreferenced_vertices()
    return out


def test_fallback_takes_over_without_the_pubic_region(mean_pelvis):
    cut = _without_pubis(mean_pelvis, 40.0)
    # The region search has nothing to stand on at the pubis ...
    with pytest.raises(frames.AppSearchError, match="pubic tubercles"):
        frames.tripod_app(cut.vertices, _prior(cut.vertices))
    # ... so the convex hull gives the plane, and says so.
    frame = frames.find_app(cut.vertices)
    assert frame.method == "hull"
    assert "pubic tubercles" in frame.fallback_reason
    a = hip.analyze(cut, mean_pelvis.femur).as_dict()
    assert a["frame"] == "app" and a["frame_method"] == frames.FRAME_METHODS["hull"]
    assert "fallback" in a["frame_method"]
    assert any("fallback" in w and "pubic tubercles" in w for w in a["warnings"])
    # The plane now rests lower on the pubic rami: still a pelvic frame, within 20 degrees.
    whole = frames.find_app(mean_pelvis.pelvis.vertices)
    tilt = np.degrees(np.arccos(frame.tf_ras_input[1, :3] @ whole.tf_ras_input[1, :3]))
    assert 1.0 < tilt < 20.0


def test_implausible_planes_are_refused():
    exp = frames.TemplatePrior(
        landmarks={},
        anterior=np.array([0.0, 1.0, 0.0]),
        radius_mm=30.0,
        asis_mm=220.0,
        height_mm=95.0,
    )
    a, b, p = np.array([110.0, 0, 0]), np.array([-110.0, 0, 0]), np.array([0.0, 0, -95])
    frames._check_plausible(a, b, p, exp)  # the template's own proportions pass
    for args, match in (
        ((a / 3, b / 3, p), "ASIS 73 mm apart"),
        ((a, b, p / 4), "pubis 24 mm below"),
        ((a, b, p + [105.0, 0, 0]), "between the two ASIS"),
        ((a, b, np.array([0.0, -95, 0])), "deg off"),
    ):
        with pytest.raises(frames.AppSearchError, match=match):
            frames._check_plausible(*args, exp)


def test_no_pelvis_is_still_refused():
    """The fallback does not make anything a pelvis: a femur gives the registration error."""
    femur = atlas.evaluate(subdivisions=4).femur_left
    with pytest.raises(LandmarkError, match="is this a whole pelvis"):
        frames.find_app(femur.vertices)


@pytest.mark.slow
@pytest.mark.parametrize("index", FRAME_FAILED + SEAT_FAILED)
def test_draws_that_failed_now_measure(index):
    for side, (b, values) in measure_both_sides(shape_draws(index + 1)[index]).items():
        assert b.gap_mm > 0
        assert values["frame"] == "app"
        check_possible(values, f"draw {index} {side}")
        # Each femur in its own socket (RAS: the left hip at -x), backed out of it
        # by no more than the limit.
        sign = -1.0 if side == "left" else 1.0
        assert sign * b.head.center_mm[0] > 40.0 and sign * b.socket.center_mm[0] > 40.0
        offset = np.linalg.norm(b.head.center_mm - b.socket.center_mm)
        assert offset <= anatomy.MAX_BACK_OUT_MM + 1e-6


@pytest.mark.slow
def test_twenty_draws_measure_on_both_sides():
    """Seed 0, draws 0-19 (draw 19 is the one first reported): every hip measures."""
    for i, w in enumerate(shape_draws(20)):
        for side, (b, values) in measure_both_sides(w).items():
            assert b.gap_mm > 0, f"draw {i} {side}: gap {b.gap_mm:.2f} mm"
            check_possible(values, f"draw {i} {side}")
