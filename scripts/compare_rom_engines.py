"""Why FCL: the contact test of hipviz.motion against a signed-distance grid (scipy).

Both answer "do the bones meet at this pose?" for the femur turned about its head centre.
FCL tests the triangle meshes (bounding-volume hierarchies). The grid holds the pelvis's
signed distance at voxel centres (trimesh voxelisation, scipy's Euclidean distance
transform) and tests femoral surface samples by trilinear interpolation
(``scipy.ndimage.map_coordinates``). Printed: build time, time per pose, and the flexion
limit of the analytic hemisphere (R 25, rho 15: 53.13° exactly) and of the built-in hip.

    PYTHONPATH=.:tests python scripts/compare_rom_engines.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import trimesh
from scipy import ndimage

from hipviz.motion import MotionModel, pose_transform


class GridContact:
    """Pelvis signed distance on a voxel grid; femur surface samples tested against it."""

    def __init__(self, pelvis: trimesh.Trimesh, femur_pts: np.ndarray, pitch: float):
        t0 = time.perf_counter()
        vox = pelvis.voxelized(pitch).fill()
        inside = np.pad(vox.matrix, 3)
        self.origin = vox.transform[:3, 3] - 3 * pitch  # centre of voxel (0, 0, 0)
        self.pitch = pitch
        outside_d = ndimage.distance_transform_edt(~inside) * pitch
        inside_d = ndimage.distance_transform_edt(inside) * pitch
        # the surface lies half a voxel between an inside and an outside centre
        self.sdf = np.where(inside, -(inside_d - 0.5 * pitch), outside_d - 0.5 * pitch)
        self.points = femur_pts
        self.build_s = time.perf_counter() - t0

    def touching(self, tf: np.ndarray) -> bool:
        p = self.points @ tf[:3, :3].T + tf[:3, 3]
        idx = ((p - self.origin) / self.pitch).T
        d = ndimage.map_coordinates(self.sdf, idx, order=1, mode="constant", cval=1e3)
        return bool(d.min() <= 0.0)


def _samples(model: MotionModel, spacing: float) -> np.ndarray:
    """Surface samples (about ``spacing`` mm apart) of the femur, articular head left out."""
    piece = next(iter(model.femur.values()))
    sub = trimesh.Trimesh(piece.mesh.vertices, piece.mesh.faces[piece.faces], process=False)
    n = int(sub.area / spacing**2)
    pts, _ = trimesh.sample.sample_surface_even(sub, n, seed=0)
    return np.vstack([sub.vertices, pts]) @ piece.tf[:3, :3].T + piece.tf[:3, 3]


def _limit(touching, lm) -> float:
    lo, hi = 0.0, 150.0
    t = 0.0
    while t < 150.0:
        t += 2.0
        if touching(pose_transform(lm, t, 0.0, 0.0)):
            hi = t
            break
        lo = t
    while hi - lo > 0.1:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if touching(pose_transform(lm, mid, 0.0, 0.0)) else (mid, hi)
    return 0.5 * (lo + hi)


def _per_pose_ms(touching, lm) -> float:
    times = []
    for t in np.linspace(0.0, 40.0, 40):
        tf = pose_transform(lm, t, 5.0, 10.0)
        t0 = time.perf_counter()
        touching(tf)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def compare(name: str, model: MotionModel, pelvis: trimesh.Trimesh, exact: float | None) -> None:
    lm = model.landmarks
    fcl_limit = model.limit("flexion").angle_deg
    print(
        f"{name}: flexion limit, FCL {fcl_limit:.2f}°" + (f" (exact {exact:.2f}°)" if exact else "")
    )
    print(f"  FCL: {_per_pose_ms(model._touching, lm):.3f} ms per pose")
    for pitch in (1.0, 0.5):
        grid = GridContact(pelvis, _samples(model, pitch), pitch)
        print(
            f"  grid {pitch} mm: build {grid.build_s:.2f} s, {grid.sdf.size / 1e6:.1f} M voxels, "
            f"{len(grid.points)} femoral samples, "
            f"{_per_pose_ms(grid.touching, lm):.2f} ms per pose, "
            f"flexion limit {_limit(grid.touching, lm):.2f}°"
        )


def main() -> None:
    from test_motion import AnalyticHip, X, _knee_at

    hip = AnalyticHip(knee_dir=_knee_at(60.0, X))
    compare("analytic hemisphere R 25, rho 15", hip.model(), hip.cup, 53.13)

    from hipviz.anatomy import builtin_hip
    from hipviz.simulate import Simulation

    b = builtin_hip(side="left")
    sim = Simulation(b.pelvis, b.femur)
    compare("built-in hip", sim.motion(), sim.pelvis, None)


if __name__ == "__main__":
    main()
