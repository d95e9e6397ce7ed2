"""Shared fixtures: analytic hips, the built-in hip, the validation specimens."""

from pathlib import Path

import numpy as np
import pytest

VALIDATION = Path(__file__).resolve().parents[2] / "shared" / "validation"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def builtin_left():
    from hipviz.anatomy import builtin_hip

    return builtin_hip(side="left", subdivisions=8)


def _specimen(name: str):
    """(pelvis, femur) meshes of a validation specimen, or skip when absent."""
    import trimesh

    folder = VALIDATION / name
    if not (folder / "pelvis_no_sacrum.ply").exists():
        pytest.skip(
            f"validation specimen {name} not found at {folder} (test data kept beside the "
            "repository, under a non-commercial licence, not shipped with it)"
        )
    return (
        trimesh.load(folder / "pelvis_no_sacrum.ply", process=False),
        trimesh.load(folder / "femur_r.ply", process=False),
    )


@pytest.fixture
def specimen():
    """Loader of the validation specimens: ``specimen("lhdl_ct_staple")``."""
    return _specimen
