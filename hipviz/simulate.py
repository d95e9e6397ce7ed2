"""Plan an osteotomy on one hip and re-measure it after every move.

:class:`Simulation` measures a hip once (:func:`hipviz.hip.analyze`), then
keeps what a move does not change - the frame, the landmarks, the ray
casters of every piece - so a move costs only the rays that see the moved
bone: about 10-20 ms for every measure, the joint gap and the contact across
the cuts. A re-cut (new procedure or cut adjustment) rebuilds the pieces.

The fragment's rays are cast in its own, unmoved coordinates (the ray is
moved instead of the bone), so moving it needs no new acceleration
structure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from . import fixation as fx
from . import landmarks as lmk
from . import measures as ms
from . import osteotomy as ost
from ._typing import ArrayLike, Transform, Vector
from .errors import InputError
from .geometry import apply, fibonacci_directions, invert, rigid, translation
from .hip import (
    SOCKET_TOLERANCE_MM,
    HipAnalysis,
    _jsonable,
    _mckibbin,
    _moved,
    acetabular_measures,
    analyze,
    check_possible,
    femoral_angles,
)
from .raycast import RayCaster, RecentRays

#: Gap between bones below which a move counts as an overlap, mm.
OVERLAP_TOLERANCE_MM = 0.0


@dataclass(frozen=True)
class Outcome:
    """What a planned move does to one hip.

    Attributes
    ----------
    before, after : dict
        Measures with the keys of ``hipviz measure --json`` (``after`` in the
        same frame as ``before``: the unoperated pelvis's).
    notes_before, notes_after : dict
        Reasons for nulls before and after the move.
    transforms : dict
        ``fragment``, ``femur_proximal``, ``femur_distal`` -> (4, 4) moves
        in the measurement frame.
    min_gap_mm : float
        Smallest femur-to-pelvis gap after the move (negative: overlap).
    gap_method : str
    contact : dict
        ``pelvis`` and/or ``femur`` -> :class:`hipviz.osteotomy.Contact`.
    leg_length_change_mm : float
        Change of the hip-centre-to-knee length of the femur plus the
        downward shift of the hip centre, mm (positive: a longer leg).
    hip_center_shift_mm : (3,) float
        Head centre displacement as (lateral, anterior, superior), mm.
    head_center_after_mm : (3,) float
        Head centre after the move, measurement frame.
    warnings : list of str
    edges_after : dict
        Rim edges after the move (:class:`hipviz.measures.Edge`, measurement
        frame), keyed as :attr:`hipviz.hip.HipAnalysis.edges`.
    coverage_after : hipviz.measures.Coverage or None
        Head coverage after the move, with the per-direction ``covered`` mask.
    """

    before: dict[str, Any]
    after: dict[str, Any]
    notes_before: dict[str, str]
    notes_after: dict[str, str]
    transforms: dict[str, Transform]
    min_gap_mm: float
    gap_method: str
    contact: dict[str, ost.Contact]
    leg_length_change_mm: float
    hip_center_shift_mm: Vector
    head_center_after_mm: Vector
    plan: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    edges_after: dict[str, ms.Edge] = field(default_factory=dict)
    coverage_after: ms.Coverage | None = None

    @property
    def overlap(self) -> bool:
        return bool(self.min_gap_mm < OVERLAP_TOLERANCE_MM)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the ``hipviz simulate --json`` object."""
        shift = self.hip_center_shift_mm
        after = dict(self.after)
        after["notes"] = dict(self.notes_after)
        before = dict(self.before)
        before["notes"] = dict(self.notes_before)
        return _jsonable(
            {
                "before": before,
                "after": after,
                "min_gap_mm": self.min_gap_mm,
                "overlap": self.overlap,
                "gap_method": self.gap_method,
                "cut_contact": {k: v.as_dict() for k, v in self.contact.items()},
                "leg_length_change_mm": self.leg_length_change_mm,
                "hip_center_shift_mm": {
                    "lateral": shift[0],
                    "anterior": shift[1],
                    "superior": shift[2],
                },
                "plan": self.plan,
                "warnings": list(self.warnings),
            }
        )


class Simulation:
    """A hip ready to be cut and moved, re-measured in milliseconds.

    Parameters
    ----------
    pelvis, femur : trimesh.Trimesh
        Closed meshes in mm, input coordinates (as for
        :func:`hipviz.hip.analyze`).
    side, frame, coverage_margin_mm, n_directions, tilt_deg
        As for :func:`hipviz.hip.analyze`.
    analysis : HipAnalysis, optional
        A finished analysis of these meshes, to skip measuring them again.
    femur_exit_mm : (n_directions,) float, optional
        With ``analysis``: the whole femur's :meth:`femur_exit_mm`, as a
        simulation of the same meshes and analysis gave it, to skip casting
        those rays again (about a second for a million-triangle femur).

    Examples
    --------
    >>> from hipviz.anatomy import builtin_hip
    >>> hip = builtin_hip(side="left")
    >>> sim = Simulation(hip.pelvis, hip.femur)
    >>> sim.cut("pao")  # doctest: +SKIP
    >>> out = sim.move(ost.AcetabularMove(lateral_deg=15))  # doctest: +SKIP
    >>> out.after["lcea_deg"] - out.before["lcea_deg"]  # doctest: +SKIP
    15.0
    """

    def __init__(
        self,
        pelvis: trimesh.Trimesh,
        femur: trimesh.Trimesh,
        *,
        side: str = "auto",
        frame: str = "auto",
        coverage_margin_mm: float = 5.0,
        n_directions: int = 10000,
        tilt_deg: float = 0.0,
        analysis: HipAnalysis | None = None,
        femur_exit_mm: ArrayLike | None = None,
    ):
        if pelvis is None:
            msg = "an osteotomy needs the pelvis as well as the femur"
            raise InputError(msg)
        self.analysis = analysis or analyze(
            pelvis,
            femur,
            side=side,
            frame=frame,
            coverage_margin_mm=coverage_margin_mm,
            n_directions=n_directions,
            tilt_deg=tilt_deg,
        )
        an = self.analysis
        if an.socket is None:  # pragma: no cover - analyze finds it or raises
            msg = "no socket found on the pelvis"
            raise InputError(msg)
        self.tf_ras_input = an.tf_ras_input
        self.pelvis = _moved(pelvis, self.tf_ras_input)
        self.femur = _moved(femur, self.tf_ras_input)
        self.axes = an.axes
        self.center_mm = an.head.center_mm
        self.radius_mm = an.head.radius_mm
        self.margin_mm = coverage_margin_mm
        self.n_directions = n_directions
        self._las = fibonacci_directions(n_directions)
        self._dirs = self.axes.from_las(self._las)
        fl = an.femur
        self._neck_to_head = -fl.toward_neck
        self._shaft = fl.shaft.direction
        self._anterior = fl.anterior
        self._medial = fl.medial
        self._pelvic_axes = self.axes if an.frame in ("app", "ras", "lps") else None
        self.knee_mm = lmk.knee_center(self.femur, fl.shaft)

        self._pelvis_caster = RayCaster(self.pelvis)
        # The pieces that stay put are asked the same rays move after move.
        self._pelvis_rays = RecentRays(self._pelvis_caster.first_hit)
        self._rest_rays: RecentRays | None = None
        self._pelvis_manifold = None
        self._femur_manifold = None
        self.pelvis_cut: ost.PelvisCut | None = None
        self.femur_cut: ost.FemurCut | None = None
        self._fragment_caster: RayCaster | None = None
        self._rest_caster: RayCaster | None = None
        self._proximal_caster: RayCaster | None = None
        self._femur_exit: np.ndarray | None = None
        self._whole_femur_exit = None
        if femur_exit_mm is not None and analysis is not None:
            self._whole_femur_exit = np.asarray(femur_exit_mm, dtype=float)
            if self._whole_femur_exit.shape != (n_directions,):
                msg = f"femur_exit_mm must have shape ({n_directions},)"
                raise ValueError(msg)
        self._trees: dict[str, cKDTree] = {}
        self._samples: dict[str, np.ndarray] = {}

        self.before = dict(an.values)
        self.notes_before = dict(an.notes)
        self._motion_lm = None
        self._bvh_cache: dict = {}

    # ------------------------------------------------------------------ cuts

    def cut(
        self, procedure: str = "pao", adjust: ost.CutAdjustments | None = None
    ) -> ost.PelvisCut:
        """Cut the pelvis for ``procedure`` (a key of :data:`hipviz.osteotomy.PROCEDURES`)."""
        if self._pelvis_manifold is None:
            self._pelvis_manifold = ost.to_manifold(self.pelvis)
        geometry = ost.place_cuts(
            procedure,
            self.center_mm,
            self.radius_mm,
            self.axes,
            self.analysis.pelvis_landmarks,
            adjust,
        )
        self.pelvis_cut = ost.cut_pelvis(self._pelvis_manifold, geometry)
        self._fragment_caster = RayCaster(self.pelvis_cut.fragment)
        self._rest_caster = RayCaster(self.pelvis_cut.rest)
        self._rest_rays = RecentRays(self._rest_caster.first_hit)
        self._trees = {k: v for k, v in self._trees.items() if k == "surface:proximal"}
        self._surface_distance("rest", self.pelvis_cut.rest, self.pelvis_cut.face)
        return self.pelvis_cut

    def uncut(self) -> None:
        """Forget the pelvic cut (the pelvis is whole again)."""
        self.pelvis_cut = None
        self._fragment_caster = self._rest_caster = self._rest_rays = None
        self._trees = {k: v for k, v in self._trees.items() if k == "surface:proximal"}

    def cut_femur(self, level_mm: float | None = None) -> ost.FemurCut:
        """Cut the femur across the shaft ``level_mm`` below the head centre."""
        if self._femur_manifold is None:
            self._femur_manifold = ost.to_manifold(self.femur)
        medial = self._medial if self._medial is not None else -self.axes.lateral
        anterior = self._anterior if self._anterior is not None else self.axes.anterior
        geometry = ost.femoral_cut_geometry(
            self.femur,
            self.center_mm,
            self.radius_mm,
            -self._neck_to_head,
            self.analysis.femur.shaft.point_mm,
            self._shaft,
            medial,
            anterior,
            level_mm=level_mm,
        )
        self.femur_cut = ost.cut_femur(self._femur_manifold, geometry)
        self._proximal_caster = RayCaster(self.femur_cut.proximal)
        self._femur_exit = None
        self._trees.pop("surface:proximal", None)
        self._samples.pop("distal_samples", None)
        self._surface_distance("proximal", self.femur_cut.proximal, self.femur_cut.face)
        return self.femur_cut

    def uncut_femur(self) -> None:
        """Forget the femoral cut (the femur is whole again)."""
        self.femur_cut = None
        self._proximal_caster = None
        self._femur_exit = None
        self._trees.pop("surface:proximal", None)
        self._samples.pop("distal_samples", None)

    # ------------------------------------------------------------------ moves

    def _pelvis_hit(self, tf_fragment: Transform):
        if self.pelvis_cut is None:
            return self._pelvis_rays
        rest, frag = self._rest_rays, self._fragment_caster
        inv = invert(tf_fragment)
        r_inv, t_inv = inv[:3, :3], inv[:3, 3]

        def hit(origins, directions):
            d = np.atleast_2d(np.asarray(directions, dtype=float))
            o = np.broadcast_to(np.asarray(origins, dtype=float), d.shape)
            return np.minimum(rest(origins, d), frag.first_hit(o @ r_inv.T + t_inv, d @ r_inv.T))

        return hit

    def femur_exit_mm(self) -> np.ndarray:
        """(n_directions,) float: distance from the head centre, along each coverage
        direction, to where the ray leaves the femur (its proximal piece when cut),
        mm. Cast once per femur and kept."""
        if self._femur_exit is None:
            if self._proximal_caster is None and self._whole_femur_exit is not None:
                self._femur_exit = self._whole_femur_exit
            else:
                caster = self._proximal_caster or RayCaster(self.femur)
                self._femur_exit = caster.first_hit(self.center_mm, self._dirs)
        return self._femur_exit

    def _distal_gap(self, tf_distal: Transform, tf_fragment: Transform) -> float:
        """Signed gap between the moved distal femur and the pelvis pieces, mm.

        Surface samples of the distal piece inside a pelvic piece make the
        gap negative (by their depth); otherwise the closest approach, both
        to within about half a millimetre.
        """
        assert self.femur_cut is not None
        if "distal_samples" not in self._samples:
            # Vertices alone miss long flat or cylindrical stretches of a coarse mesh.
            distal = self.femur_cut.distal
            dense, _ = trimesh.sample.sample_surface(distal, 4000, seed=0)
            self._samples["distal_samples"] = np.vstack([np.asarray(distal.vertices), dense])
        pts = apply(tf_distal, self._samples["distal_samples"])
        pieces = (
            {"pelvis": (self.pelvis, np.eye(4))}
            if self.pelvis_cut is None
            else {
                "rest": (self.pelvis_cut.rest, np.eye(4)),
                "fragment": (self.pelvis_cut.fragment, tf_fragment),
            }
        )
        best = np.inf
        for name, (mesh, tf) in pieces.items():
            if name not in self._trees:
                # Vertices plus dense surface samples (about 1 mm apart): the
                # nearest of them is within a fraction of a mm of the surface.
                n = int(min(80000, max(2000, mesh.area / 0.5)))
                dense, _ = trimesh.sample.sample_surface(mesh, n, seed=0)
                self._trees[name] = cKDTree(np.vstack([np.asarray(mesh.vertices), dense]))
            local = apply(invert(tf), pts)
            lo, hi = mesh.bounds
            box = np.all((local > lo - 1.0) & (local < hi + 1.0), axis=1)
            if not box.any():
                continue
            cand = local[box]
            dist, _ = self._trees[name].query(cand, distance_upper_bound=30.0)
            near = dist < 5.0
            inside = np.zeros(len(cand), bool)
            if near.any():
                inside[near] = mesh.contains(cand[near])
            if inside.any():
                best = min(best, -float(dist[inside].max()))
            else:
                best = min(best, float(dist.min()))
        return best

    def _surface_distance(self, key: str, mesh: trimesh.Trimesh, face: ost.CutFace):
        """Distance to the surface of ``mesh`` (its vertices and its dense cut samples)."""
        tree_key = f"surface:{key}"
        if tree_key not in self._trees:
            pts = np.vstack([np.asarray(mesh.vertices), face.points_mm])
            self._trees[tree_key] = cKDTree(pts)
        tree = self._trees[tree_key]
        return lambda points: tree.query(points)[0]

    def transforms(
        self,
        acetabular: ost.AcetabularMove | None = None,
        femoral: ost.FemoralMove | None = None,
    ) -> dict[str, Transform]:
        """Where a move puts each piece, without measuring (well under a millisecond).

        Returns ``fragment``, ``femur_proximal`` (the femur follows the
        socket's shift) and ``femur_distal`` (4, 4) transforms in the
        measurement frame, as :attr:`Outcome.transforms`. Cuts the femur at
        its default level if a femoral move needs it.
        """
        acetabular = (acetabular or ost.AcetabularMove()).validate()
        femoral = (femoral or ost.FemoralMove()).validate()
        if not acetabular.is_identity and self.pelvis_cut is None:
            msg = "choose a pelvic osteotomy (cut) before moving the acetabular fragment"
            raise InputError(msg)
        if not femoral.is_identity and self.femur_cut is None:
            self.cut_femur()
        c = self.center_mm
        tf_frag = (
            ost.acetabular_transform(acetabular, self.pelvis_cut.geometry)
            if self.pelvis_cut is not None
            else np.eye(4)
        )
        tf_follow = translation(apply(tf_frag, c) - c)  # the femur follows the socket
        tf_rel = (
            ost.femoral_transform(femoral, self.femur_cut.geometry)
            if self.femur_cut is not None
            else np.eye(4)
        )
        return {
            "fragment": tf_frag,
            "femur_proximal": tf_follow,
            "femur_distal": tf_follow @ tf_rel,
        }

    def move(
        self,
        acetabular: ost.AcetabularMove | None = None,
        femoral: ost.FemoralMove | None = None,
    ) -> Outcome:
        """Move the fragment and the femoral shaft, and measure everything again.

        Raises
        ------
        InputError
            Out-of-range values, or a move of a piece that has not been cut.
        """
        acetabular = (acetabular or ost.AcetabularMove()).validate()
        femoral = (femoral or ost.FemoralMove()).validate()
        tfs = self.transforms(acetabular, femoral)
        tf_frag, tf_follow, tf_distal = tfs["fragment"], tfs["femur_proximal"], tfs["femur_distal"]
        tf_rel = invert(tf_follow) @ tf_distal
        axes, c, r = self.axes, self.center_mm, self.radius_mm
        an = self.analysis
        c_after = apply(tf_frag, c)

        hit = self._pelvis_hit(tf_frag)
        acet = acetabular_measures(
            hit,
            c_after,
            r,
            an.socket.radius_mm,
            axes,
            coverage_margin_mm=self.margin_mm,
            directions_las=self._las,
            socket_center_mm=apply(tf_frag, an.socket.center_mm),
            socket_tolerance_mm=max(SOCKET_TOLERANCE_MM, 3.0 * an.socket.rms_mm),
        )
        rot = tf_distal[:3, :3]
        fem_values, fem_notes = femoral_angles(
            self._neck_to_head,
            rot @ self._shaft,
            None if self._anterior is None else rot @ self._anterior,
            None if self._medial is None else rot @ self._medial,
            self._pelvic_axes,
        )
        after = dict(self.before)
        notes = dict(self.notes_before)
        for key in set(acet.values) | set(fem_values):
            notes.pop(key, None)
        after.update(acet.values)
        after.update(fem_values)
        notes.update(acet.notes)
        notes.update(fem_notes)
        tf_input = invert(self.tf_ras_input)
        after["head_center_mm"] = apply(tf_input, c_after)
        after["socket_center_mm"] = apply(tf_input, apply(tf_frag, an.socket.center_mm))
        _mckibbin(after, notes)
        after["implausible"], impossible = check_possible(
            after, self.femur, an.femur.side, before=self.before
        )

        # Joint gap along the coverage rays: the pelvis must lie beyond the
        # point where each ray leaves the femur, else it is inside the femur.
        d_f = self.femur_exit_mm()
        seen = np.isfinite(acet.distances) & np.isfinite(d_f)
        gap = float((acet.distances - d_f)[seen].min()) if seen.any() else float("inf")
        gap_method = "along rays from the head centre (joint)"
        if not femoral.is_identity:
            gap = min(gap, self._distal_gap(tf_distal, tf_frag))
            gap_method += " and shaft vertices (femoral cut)"

        contact: dict[str, ost.Contact] = {}
        warnings: list[str] = []
        if self.pelvis_cut is not None:
            contact["pelvis"] = ost.cut_contact(
                self.pelvis_cut.face,
                tf_frag,
                self._rest_caster.first_hit_facing,
                self._surface_distance("rest", self.pelvis_cut.rest, self.pelvis_cut.face),
            )
        if self.femur_cut is not None:
            contact["femur"] = ost.cut_contact(
                self.femur_cut.face,
                tf_rel,
                self._proximal_caster.first_hit_facing,
                self._surface_distance("proximal", self.femur_cut.proximal, self.femur_cut.face),
            )
        for where, con in contact.items():
            if con.overlap_cut is not None:
                warnings.append(
                    f"the moved {where} piece presses {con.overlap_mm:.1f} mm into the other "
                    f"piece at the {con.overlap_cut} cut (the surgeon would trim it)"
                )
        if gap < OVERLAP_TOLERANCE_MM:
            warnings.append(f"bones overlap by {-gap:.1f} mm after this move")
        # Values impossible before already head the analysis' warnings.
        if set(after["implausible"]) - set(self.before.get("implausible") or {}):
            warnings.append(f"after this move, {impossible}")

        # Leg length: the femur's hip-to-knee length (an opening wedge adds,
        # a closing one takes away) plus how far the hip centre moved down;
        # the leg is taken to stand straight again after the operation.
        knee_after = apply(tf_distal, self.knee_mm)
        femur_change = np.linalg.norm(knee_after - c_after) - np.linalg.norm(self.knee_mm - c)
        leg = float(femur_change - (c_after - c) @ axes.superior)
        plan = {
            "procedure": None if self.pelvis_cut is None else self.pelvis_cut.geometry.procedure,
            "cuts_placed_from": None
            if self.pelvis_cut is None
            else self.pelvis_cut.geometry.placed_from,
            "pao": {
                "lateral": acetabular.lateral_deg,
                "anterior": acetabular.anterior_deg,
                "version": acetabular.version_deg,
                "medial": acetabular.medial_mm,
            },
            "femoral": {
                "varus": femoral.varus_deg,
                "flexion": femoral.flexion_deg,
                "rotation": femoral.rotation_deg,
                "level_mm": None if self.femur_cut is None else self.femur_cut.geometry.level_mm,
            },
        }
        return Outcome(
            before=self.before,
            after=after,
            notes_before=self.notes_before,
            notes_after=notes,
            transforms={
                "fragment": tf_frag,
                "femur_proximal": tf_follow,
                "femur_distal": tf_distal,
            },
            min_gap_mm=gap,
            gap_method=gap_method,
            contact=contact,
            leg_length_change_mm=leg,
            hip_center_shift_mm=axes.to_las(c_after - c),
            head_center_after_mm=c_after,
            plan=plan,
            warnings=warnings,
            edges_after=acet.edges,
            coverage_after=acet.coverage,
        )

    # ------------------------------------------------------------------ motion

    def motion(self, outcome: Outcome | None = None):
        """The range-of-motion model of the hip as it is, or after ``outcome``'s move.

        Collision structures are built once per piece and kept: a new move
        only places them (:class:`hipviz.motion.MotionModel`). The head
        centre follows the socket. After a femoral osteotomy the leg is
        taken back to its neutral, as the patient stands with the knee
        forward again: the whole cut femur is turned about the head centre
        by the inverse of the distal piece's turn, so the distal femur keeps
        its old orientation and the proximal femur (head and neck) carries
        the change - a derotation shifts internal and external rotation.
        """
        from . import motion

        if self._motion_lm is None:
            self._motion_lm = motion.landmarks_of(self.analysis, self.knee_mm)
        eye = np.eye(4)
        tf = outcome.transforms if outcome is not None else {}
        t_frag = tf.get("fragment", eye)
        t_prox = tf.get("femur_proximal", eye)
        t_dist = tf.get("femur_distal", eye)
        if self.pelvis_cut is None or outcome is None:
            pelvis = {"pelvis": (self.pelvis, eye)}
        else:
            pelvis = {
                "pelvis_rest": (self.pelvis_cut.rest, eye),
                "acetabular_fragment": (self.pelvis_cut.fragment, t_frag),
            }
        if self.femur_cut is None or outcome is None:
            femur = {"femur": (self.femur, t_prox)}
        else:
            femur = {
                "femur_proximal": (self.femur_cut.proximal, t_prox),
                "femur_distal": (self.femur_cut.distal, t_dist),
            }
        # Back to neutral: undo the distal piece's turn about the head centre.
        c_after = apply(t_frag, self.center_mm)
        rel = invert(t_prox) @ t_dist
        t_neutral = rigid(rel[:3, :3].T, c_after - rel[:3, :3].T @ c_after)
        femur = {name: (mesh, t_neutral @ tf) for name, (mesh, tf) in femur.items()}
        lm = self._motion_lm.moved(t_frag, t_neutral @ t_dist, t_neutral @ t_prox)
        return motion.MotionModel(pelvis, femur, lm, bvh_cache=self._bvh_cache)

    # ------------------------------------------------------------------ meshes

    def meshes(self, outcome: Outcome) -> dict[str, trimesh.Trimesh]:
        """The moved bones (measurement frame): pelvis or rest + fragment, femur pieces."""
        tf = outcome.transforms
        out: dict[str, trimesh.Trimesh] = {}
        if self.pelvis_cut is None:
            out["pelvis"] = self.pelvis
        else:
            out["pelvis_rest"] = self.pelvis_cut.rest
            out["acetabular_fragment"] = _moved(self.pelvis_cut.fragment, tf["fragment"])
        if self.femur_cut is None:
            out["femur"] = _moved(self.femur, tf["femur_proximal"])
        else:
            out["femur_proximal"] = _moved(self.femur_cut.proximal, tf["femur_proximal"])
            out["femur_distal"] = _moved(self.femur_cut.distal, tf["femur_distal"])
        return out

    def fixation(self, outcome: Outcome) -> dict[str, trimesh.Trimesh]:
        """Screws into a cut pelvis and a blade plate on a cut femur, moved pose."""
        out: dict[str, trimesh.Trimesh] = {}
        meshes = self.meshes(outcome)
        c_after = outcome.head_center_after_mm
        if self.pelvis_cut is not None:
            screws = fx.pao_screws(
                meshes["pelvis_rest"],
                meshes["acetabular_fragment"],
                c_after,
                self.radius_mm,
                self.axes,
            )
            out.update({f"screw_{i + 1}": s.mesh for i, s in enumerate(screws)})
        if self.femur_cut is not None:
            plate = fx.blade_plate(
                self.femur_cut.geometry,
                outcome.transforms["femur_proximal"],
                outcome.transforms["femur_distal"],
                c_after,
                self.radius_mm,
            )
            out["blade_plate"] = plate.mesh
            out.update({f"plate_screw_{i + 1}": m for i, m in enumerate(plate.screws)})
        return out

    def export(
        self, folder: str | Path, outcome: Outcome, extra: dict[str, trimesh.Trimesh] | None = None
    ) -> list[Path]:
        """Write the moved bones (and ``extra`` meshes, e.g. fixation) as binary STL.

        Meshes are written in the input coordinates, so they overlay the
        files they came from.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        back = invert(self.tf_ras_input)
        paths = []
        for name, mesh in {**self.meshes(outcome), **(extra or {})}.items():
            path = folder / f"{name}.stl"
            _moved(mesh, back).export(path)
            paths.append(path)
        return paths


__all__ = ["Outcome", "Simulation"]
