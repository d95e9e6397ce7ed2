"""Rim sweeps cast together: the same rays and the same edges as one sweep at a time.

The reference below is the sweep as it was written before the batching, one
ray cast per step; the batched sweeps must give bitwise the same edges (the
same rays are cast, only together), in four casts for any number of sweeps.
"""

import numpy as np
import pytest

from hipviz import hip
from hipviz import measures as ms
from hipviz.geometry import unit
from hipviz.raycast import RayCaster


def one_sweep(hit, center, start, toward, reach_mm, *, elevation_axis=None,
              elevation_deg=0.0, step_deg=1.0, max_gap_deg=2.0, limit_deg=179.0):  # fmt: skip
    """``scan_edge`` as it was: one ray cast per step, the walk one sample at a time."""
    c = np.asarray(center, dtype=float)
    a, b = unit(start), unit(toward)
    e = None if elevation_axis is None else unit(elevation_axis)
    cos_e, sin_e = np.cos(np.radians(elevation_deg)), np.sin(np.radians(elevation_deg))

    def dirs(t_deg):
        t = np.radians(np.atleast_1d(t_deg))[:, None]
        d = np.cos(t) * a + np.sin(t) * b
        return d if e is None else cos_e * d + sin_e * e

    t = np.arange(-limit_deg, limit_deg + step_deg / 2, step_deg)
    cov = hit(c, dirs(t)) <= reach_mm
    k0 = int(np.argmin(np.abs(t)))
    gap = max(1, int(round(max_gap_deg / step_deg)))
    if cov[k0]:
        k = k0
        while k + 1 < len(t):
            if cov[k + 1]:
                k += 1
                continue
            ahead = cov[k + 2 : k + 2 + gap]
            if ahead.any():
                k += 1 + int(np.argmax(ahead)) + 1
                continue
            break
        if k + 1 >= len(t):
            return None
        lo, hi = t[k], t[k + 1]
    else:
        k = k0
        while k - 1 >= 0 and not cov[k - 1]:
            k -= 1
        if k - 1 < 0:
            return None
        lo, hi = t[k - 1], t[k]
    for _ in range(2):
        ts = np.linspace(lo, hi, 65)[1:-1]
        open_ = np.flatnonzero(hit(c, dirs(ts)) > reach_mm)
        if len(open_) == 0:
            lo = ts[-1]
        else:
            k = int(open_[0])
            lo, hi = (ts[k - 1] if k > 0 else lo), ts[k]
    d_edge = dirs(lo)[0]
    dist = hit(c, np.vstack([dirs(lo - 0.002)[0], d_edge]))
    t_edge = dist[0] if dist[0] <= reach_mm else dist[1]
    return float(lo), c + t_edge * d_edge


class Counted:
    """A ``hit`` that counts its calls."""

    def __init__(self, hit):
        self.hit, self.calls = hit, 0

    def __call__(self, origins, directions):
        self.calls += 1
        return self.hit(origins, directions)


def _sweeps(a: hip.HipAnalysis):
    """A hip's twelve rim sweeps, as :func:`hipviz.hip.acetabular_measures` makes them."""
    c, axes = a.head.center_mm, a.axes
    reach = a.values["rim_reach_mm"]
    wall = ms.wall_restriction(
        axes.superior, a.socket.center_mm, a.socket.radius_mm, hip.SOCKET_TOLERANCE_MM
    )
    return [
        *ms.center_edge_scans(c, axes, reach).values(),
        *ms.center_edge_scans(c, axes, reach, restrict=wall).values(),
        *ms.rim_version_scans(c, axes, reach),
        *ms.rim_version_scans(c, axes, reach, hip.CRANIAL_ELEVATION_DEG),
        ms.false_profile_scan(c, axes, reach, restrict=wall),
        ms.tonnis_scan(c, axes, a.socket.radius_mm + hip.FOSSA_DEPTH_MM),
    ]


def _as_hit(caster: RayCaster, scan: ms.EdgeScan):
    """The scan's ``hit`` with its ``restrict`` applied, for the one-sweep reference."""
    if scan.restrict is None:
        return caster.first_hit

    def hit(o, d):
        return scan.restrict(np.asarray(o, dtype=float), d, caster.first_hit(o, d))

    return hit


@pytest.mark.parametrize("case", ["normal", "dysplastic", "retroverted"])
def test_sweeps_together_give_the_edges_of_one_sweep_at_a_time(case):
    from hipviz.cases import case_hip

    h = case_hip(case, side="left")
    a = hip.analyze(h.pelvis, h.femur)
    caster = RayCaster(hip._moved(h.pelvis, a.tf_ras_input))  # the measurement frame
    scans = _sweeps(a)
    counted = Counted(caster.first_hit)
    got = ms.scan_edges(counted, scans)
    assert counted.calls == 4  # coarse, two fine sweeps, edge points: all sweeps together
    found = 0
    for scan, edge in zip(scans, got, strict=True):
        kw = {
            k: getattr(scan, k)
            for k in ("elevation_axis", "elevation_deg", "step_deg", "max_gap_deg", "limit_deg")
        }
        want = one_sweep(
            _as_hit(caster, scan), scan.center, scan.start, scan.toward, scan.reach_mm, **kw
        )
        if want is None:
            assert np.isnan(edge.angle_deg) and np.isnan(edge.point_mm).all()
            continue
        found += 1
        assert edge.angle_deg == want[0]  # bitwise: the same rays were cast
        assert np.array_equal(edge.point_mm, want[1])
    assert found >= 10  # most sweeps do meet a rim on these hips


def test_bridging_and_missing_edges_match_one_sweep_at_a_time():
    """Gaps narrower than max_gap_deg are bridged, wider ones end the sweep; no edge gives NaN."""
    # Covered everywhere except the angle bands below (degrees from the start).
    holes = [(30.4, 32.6), (50.2, 53.8)]  # 2 samples: bridged; 3 samples: the edge

    def hit(o, d):
        t = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
        open_ = np.zeros(len(d), bool)
        for lo, hi in holes:
            open_ |= (t > lo) & (t < hi)
        return np.where(open_, 100.0, 10.0)

    start, toward = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    scans = [
        ms.EdgeScan(np.zeros(3), start, toward, 20.0),
        ms.EdgeScan(np.zeros(3), start, toward, 5.0),  # nothing covered: no edge
        ms.EdgeScan(np.zeros(3), start, toward, 20.0, max_gap_deg=5.0),  # both bridged
    ]
    got = ms.scan_edges(hit, scans)
    assert got[0].angle_deg == pytest.approx(50.2, abs=1e-3)
    assert got[0].angle_deg == one_sweep(hit, np.zeros(3), start, toward, 20.0)[0]
    assert np.isnan(got[1].angle_deg) and one_sweep(hit, np.zeros(3), start, toward, 5.0) is None
    assert np.isnan(got[2].angle_deg)  # covered all the way round once the holes are bridged
    assert one_sweep(hit, np.zeros(3), start, toward, 20.0, max_gap_deg=5.0) is None
