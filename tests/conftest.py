"""Shared fixtures: analytic hips, the built-in hip, the validation specimens."""

import os
from pathlib import Path

import numpy as np
import pytest

VALIDATION = Path(__file__).resolve().parents[2] / "shared" / "validation"


@pytest.fixture(autouse=True, scope="session")
def _session_folders(tmp_path_factory):
    """App sessions (and servers the tests start) keep files in this run's temporary folder.

    So no test makes or removes ``hipviz-session-*`` folders of other runs in
    the system's temporary folder.
    """
    folder = tmp_path_factory.mktemp("session-folders")
    before = os.environ.get("HIPVIZ_SESSION_DIR")
    os.environ["HIPVIZ_SESSION_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("HIPVIZ_SESSION_DIR", None)
    else:
        os.environ["HIPVIZ_SESSION_DIR"] = before


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
