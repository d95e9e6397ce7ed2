"""Real bone: plausible adult values on the built-in anatomy and the CT specimen."""

import numpy as np
import pytest

from hipviz import hip

# Plausible adult ranges (wide: they catch a broken pipeline, not a subtle bias).
PLAUSIBLE = {
    "head_radius_mm": (19.0, 28.0),
    "lcea_deg": (15.0, 50.0),
    "acea_deg": (35.0, 80.0),
    "pcea_deg": (80.0, 140.0),
    "acetabular_version_deg": (5.0, 35.0),
    "acetabular_version_cranial_deg": (-5.0, 35.0),
    "neck_shaft_deg": (115.0, 140.0),
    "neck_shaft_projected_deg": (115.0, 140.0),
    "femoral_version_deg": (-5.0, 40.0),
    "alpha_deg": (35.0, 70.0),
    "sphericity_mm": (0.0, 4.0),
    "extrusion_index_pct": (-5.0, 35.0),
}


def in_range(values: dict, keys) -> None:
    for key in keys:
        lo, hi = PLAUSIBLE[key]
        assert values[key] is not None, key
        assert lo <= values[key] <= hi, f"{key} = {values[key]} outside {lo}-{hi}"


def test_builtin_mean_is_plausible(builtin_left):
    a = hip.analyze(builtin_left.pelvis, builtin_left.femur)
    v = a.as_dict()
    assert v["side"] == "left" and v["frame"] == "app"
    in_range(v, PLAUSIBLE)
    assert 40.0 <= v["coverage_pct"]["upper_hemisphere"] <= 95.0
    # The shape model smooths the acetabular fossa away: Tonnis is honestly absent.
    assert v["tonnis_deg"] is None and "fossa" in v["notes"]["tonnis_deg"]
    assert v["mckibbin_deg"] == pytest.approx(
        v["acetabular_version_deg"] + v["femoral_version_deg"], abs=1e-2
    )


def test_ct_specimen_in_scanner_frame(specimen):
    pelvis, femur = specimen("lhdl_ct_staple")
    v = hip.analyze(pelvis, femur).as_dict()  # LPS scanner frame, found automatically
    assert v["side"] == "right" and v["frame"] == "app"
    in_range(v, PLAUSIBLE)
    # An independent rough measurement: head radius ~23.0 mm, LCEA ~40 deg, NSA ~124 deg.
    assert v["head_radius_mm"] == pytest.approx(23.0, abs=0.5)
    assert v["lcea_deg"] == pytest.approx(40.0, abs=3.0)
    assert v["neck_shaft_deg"] == pytest.approx(124.0, abs=3.0)
    assert -5.0 <= v["tonnis_deg"] <= 15.0


def test_ct_specimen_frame_lps_matches_app_side(specimen):
    """In its own LPS axes (no realignment) the same hip is found on the same side."""
    pelvis, femur = specimen("lhdl_ct_staple")
    v = hip.analyze(pelvis, femur, frame="lps").as_dict()
    assert v["side"] == "right" and v["frame"] == "lps"
    assert 25.0 <= v["lcea_deg"] <= 50.0


def test_mri_specimen_side_and_femur(specimen):
    pelvis, femur = specimen("icl_mri_staple")
    v = hip.analyze(pelvis, femur).as_dict()
    assert v["side"] == "right"
    in_range(v, ["head_radius_mm", "acetabular_version_deg", "femoral_version_deg"])
    assert np.isfinite(v["lcea_deg"])


def test_proximal_femur_reports_why_version_is_missing(specimen, tmp_path):
    """A femur cut 150 mm below its top: neck-shaft angle yes, version null with the reason."""
    import manifold3d
    import trimesh

    pelvis, femur = specimen("lhdl_ct_staple")
    whole = hip.analyze(pelvis, femur).as_dict()
    man = manifold3d.Manifold(
        manifold3d.Mesh(
            vert_properties=np.asarray(femur.vertices, np.float32),
            tri_verts=np.asarray(femur.faces, np.uint32),
        )
    ).trim_by_plane([0, 0, 1], float(femur.bounds[1][2] - 150.0))
    cut = man.to_mesh()
    proximal = trimesh.Trimesh(cut.vert_properties[:, :3], cut.tri_verts)
    v = hip.analyze(pelvis, proximal).as_dict()
    assert v["femoral_version_deg"] is None
    assert "condyles" in v["notes"]["femoral_version_deg"]
    assert v["neck_shaft_deg"] == pytest.approx(whole["neck_shaft_deg"], abs=3.0)
    assert v["lcea_deg"] == pytest.approx(whole["lcea_deg"], abs=0.5)


@pytest.mark.validation
@pytest.mark.slow
def test_ct_specimen_pao_pieces_are_closed_and_turn_exactly(specimen):
    from hipviz import osteotomy as ost
    from hipviz.simulate import Simulation

    pelvis, femur = specimen("lhdl_ct_staple")
    sim = Simulation(pelvis, femur)
    cut = sim.cut("pao")
    assert cut.geometry.placed_from == "landmarks"
    assert cut.fragment.is_watertight and cut.rest.is_watertight
    assert cut.fragment.body_count == 1
    assert cut.fragment.volume + cut.rest.volume == pytest.approx(sim.pelvis.volume, rel=1e-5)
    # A plausible fragment: the socket with a rim of bone, a fraction of the hemipelvis.
    assert 0.08 < cut.fragment.volume / sim.pelvis.volume < 0.3
    out = sim.move(ost.AcetabularMove(lateral_deg=10))
    assert out.after["lcea_deg"] - out.before["lcea_deg"] == pytest.approx(10.0, abs=0.3)
    assert not out.overlap
