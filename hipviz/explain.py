"""Explain mode: the operation told step by step, in plain words, for a patient.

The web app shows one :class:`Step` at a time, in large print, next to the 3D
view; :attr:`Step.scene` says which picture goes with it. The texts are for
talking a patient through an operation with their surgeon: short sentences,
no jargon (or the jargon explained in the same sentence), British spelling.
They describe what usually happens; they are not advice for one person.

Numbers quoted to a patient come from :data:`hipviz.reference.MEASURES`: the
usual range is always the band whose level is ``"normal"`` there, so a band is
written once. This module is pure Python (it needs only the reference data)
and never imports the renderer or the web stack.

Examples
--------
>>> from hipviz.explain import steps
>>> [s.key for s in steps("pao")][:3]
['why', 'imaging', 'anaesthesia']
>>> steps("pao", {"lcea_deg": 14.0})[0].text.count("14°")
1
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError
from .reference import BY_KEY, INF, MEASURES, Band, MeasureInfo, lookup

__all__ = [
    "KINDS",
    "KIND_TITLES",
    "SCENES",
    "STEP_KEYS",
    "Step",
    "condition_summary",
    "PRESSURE_STEP",
    "pressure_step",
    "steps",
]

#: The steps of every operation, in the order a patient meets them.
STEP_KEYS: tuple[str, ...] = (
    "why",
    "imaging",
    "anaesthesia",
    "incision",
    "cuts",
    "turn",
    "too_far",
    "fixation",
    "closing",
    "recovery",
    "risks",
)

#: What the 3D view can show: the hip before, the cuts, the move (animated),
#: the fixation, and the hip after.
SCENES: tuple[str, ...] = ("before", "cuts", "turn", "fixation", "after")

#: The kinds of operation explained: the acetabular osteotomies of
#: :data:`hipviz.osteotomy.PROCEDURES`, and ``"femoral"`` (an intertrochanteric
#: varus/valgus or derotation osteotomy of the upper thigh bone).
KINDS: tuple[str, ...] = ("pao", "triple", "salter", "chiari", "rao", "femoral")

#: A plain title for each kind, with the medical name in brackets.
KIND_TITLES: dict[str, str] = {
    "pao": "Turning the hip socket (periacetabular osteotomy, PAO)",
    "triple": "Turning the hip socket with three cuts (triple pelvic osteotomy)",
    "salter": "Tilting the hip socket in a child (Salter osteotomy)",
    "chiari": "Building a new roof over the hip (Chiari osteotomy)",
    "rao": "Turning the hip socket in a curved shell (rotational acetabular osteotomy)",
    "femoral": "Realigning the top of the thigh bone (femoral osteotomy)",
}

_SCENE_OF: dict[str, str] = {
    "why": "before",
    "imaging": "before",
    "anaesthesia": "before",
    "incision": "before",
    "cuts": "cuts",
    "turn": "turn",
    "too_far": "after",
    "fixation": "fixation",
    "closing": "after",
    "recovery": "after",
    "risks": "after",
}

_TITLES: dict[str, str] = {
    "why": "Why this operation",
    "imaging": "Tests and planning",
    "anaesthesia": "Anaesthesia",
    "incision": "Reaching the bone",
    "cuts": "The bone cuts",
    "turn": "Moving the bone",
    "too_far": "Why not turn it further",
    "fixation": "Holding it in place",
    "closing": "Closing the wound",
    "recovery": "Recovery",
    "risks": "Risks",
}

_TURN_TITLES: dict[str, str] = {
    "pao": "Turning the socket",
    "triple": "Turning the socket",
    "salter": "Tilting the socket",
    "chiari": "Sliding the hip inwards",
    "rao": "Turning the socket",
    "femoral": "Changing the angle",
}

#: The largest number of the patient's own measures quoted in the 'why' step
#: (the step must stay short enough for large print).
MAX_PERSONAL = 2


@dataclass(frozen=True)
class Step:
    """One step of an operation, as the explain mode shows it.

    Attributes
    ----------
    key : str
        One of :data:`STEP_KEYS`.
    title : str
        A short heading, e.g. ``"Why this operation"``.
    text : str
        Two to five short plain sentences, at most about 90 words.
    scene : str
        What the 3D view shows during the step, one of :data:`SCENES`.
    """

    key: str
    title: str
    text: str
    scene: str


# --------------------------------------------------------------------------- #
# Numbers in plain words, from the reference bands
# --------------------------------------------------------------------------- #


def _unit_text(unit: str) -> str:
    return unit if unit in ("°", "%") else f" {unit}"


def _number(x: float, unit: str) -> str:
    """``14°``, ``35%``, ``2.5 mm``: whole degrees and percent, one decimal otherwise."""
    digits = 1 if unit not in ("°", "%") else 0
    text = f"{x:.{digits}f}"
    if text in ("-0", "-0.0"):
        text = text[1:]
    return text + _unit_text(unit)


def _normal_band(info: MeasureInfo) -> Band | None:
    return next((b for b in info.bands if b.level == "normal"), None)


def _usual(info: MeasureInfo) -> str | None:
    """The normal band in words: ``25° to 39°``, ``below 55°``, ``25° or more``."""
    band = _normal_band(info)
    if band is None:
        return None
    if band.low == -INF and band.high == INF:
        return None
    if band.low == -INF:
        return f"below {_number_g(band.high, info.unit)}"
    if band.high == INF:
        return f"{_number_g(band.low, info.unit)} or more"
    return f"{_number_g(band.low, info.unit)} to {_number_g(band.high, info.unit)}"


def _number_g(x: float, unit: str) -> str:
    return f"{x:g}{_unit_text(unit)}"


def _value(values: Mapping[str, Any], key: str) -> float | None:
    """A possible, finite number stored under ``key`` (dotted keys allowed), else None.

    An impossible value (outside the measure's possible range) is a
    misreading, not something to tell a patient: it counts as missing.
    """
    raw = lookup(_as_dict(values), key)
    if raw is None or isinstance(raw, bool):
        return None
    try:
        x = float(raw)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(x):
        return None
    info = BY_KEY.get(key)
    return x if info is None or info.is_possible(x) else None


def _as_dict(values: Mapping[str, Any]) -> dict:
    """A plain dict (nested mappings too), as :func:`hipviz.reference.lookup` expects."""
    return {k: _as_dict(v) if isinstance(v, Mapping) else v for k, v in values.items()}


#: Plain names of the measures a patient is most likely to be shown.
_PLAIN_NAMES: dict[str, str] = {
    "lcea_deg": "Socket roof angle",
    "acea_deg": "Front cover angle",
    "pcea_deg": "Back cover angle",
    "acetabular_version_deg": "Socket facing",
    "acetabular_version_cranial_deg": "Socket facing near the roof",
    "tonnis_deg": "Roof slope",
    "extrusion_index_pct": "Ball uncovered",
    "coverage_pct.upper_hemisphere": "Ball covered",
    "neck_shaft_deg": "Neck angle of the thigh bone",
    "neck_shaft_projected_deg": "Neck angle on an X-ray",
    "femoral_version_deg": "Twist of the thigh bone",
    "alpha_deg": "Ball-and-neck shape",
    "sphericity_mm": "Roundness of the ball",
    "mckibbin_deg": "Combined forward facing",
    "head_radius_mm": "Size of the ball",
}

#: Band labels of the reference in plain words; (key, label) overrides label.
_PLAIN_LABELS: dict[str | tuple[str, str], str] = {
    "dysplastic": "shallow socket (dysplasia)",
    ("tonnis_deg", "dysplastic"): "steep roof (dysplasia)",
    "borderline": "borderline",
    "normal": "in the usual range",
    "overcovered": "more cover than usual",
    "undercovered": "less cover than usual",
    "retroverted": "facing backwards (retroversion)",
    ("femoral_version_deg", "retroverted"): "twisted backwards (retroversion)",
    "low": "lower than usual",
    "high": "higher than usual",
    "varus": "angle smaller than usual (varus)",
    "valgus": "angle larger than usual (valgus)",
    "antetorsion": "twisted forwards much more than usual (antetorsion)",
    "cam": "a bump where the ball meets the neck (cam)",
    "spherical": "round, as usual",
    "aspherical": "not round",
}


def _plain_label(key: str, band: Band) -> str:
    return _PLAIN_LABELS.get((key, band.label), _PLAIN_LABELS.get(band.label, band.label))


def condition_summary(values: Mapping[str, Any]) -> list[str]:
    """One plain sentence per measure that has a value and a band.

    Parameters
    ----------
    values : mapping
        Measures as ``hipviz measure --json`` gives them (keys of
        :data:`hipviz.reference.MEASURES`; dotted keys such as
        ``coverage_pct.upper_hemisphere`` are looked up in nested dicts).
        Missing, None, NaN or non-numeric values are left out, and so are
        measures without a band.

    Returns
    -------
    list of str
        In the order of :data:`hipviz.reference.MEASURES`, e.g.
        ``"Socket roof angle (LCEA) 14°: shallow socket (dysplasia); usual is
        25° to 39°. How far the socket roof reaches over ..."``.
    """
    lines = []
    for info in MEASURES:
        x = _value(values, info.key)
        band = info.classify(x)
        if x is None or band is None:
            continue
        name = _PLAIN_NAMES.get(info.key, info.name)
        usual = _usual(info)
        short = info.short.replace(" (", ", ").rstrip(")")  # "NSA (coronal)" -> "NSA, coronal"
        line = f"{name} ({short}) {_number(x, info.unit)}: {_plain_label(info.key, band)}"
        if usual is not None and band.level != "normal":
            line += f"; usual is {usual}"
        lines.append(f"{line}. {info.meaning}")
    return lines


# --------------------------------------------------------------------------- #
# The 'why' step, personalised with the patient's own numbers
# --------------------------------------------------------------------------- #

_Personal = Callable[[str, str], str]

#: Sentences quoting one measure: f(value, usual range) in plain words.
_PERSONAL: dict[str, _Personal] = {
    "lcea_deg": lambda v, u: (
        f"On this hip the roof covers the top of the ball at an angle of {v}; "
        f"in most hips it is {u}."
    ),
    "tonnis_deg": lambda v, u: (
        f"The part of the roof that takes your weight slopes at {v}; in most hips it is {u}."
    ),
    "extrusion_index_pct": lambda v, u: (
        f"Here {v} of the ball's width sticks out past the roof; in most hips it is {u}."
    ),
    "acetabular_version_deg": lambda v, u: (
        f"The socket faces backwards by {v.lstrip('-')}; in most hips it faces forwards by {u}."
        if v.startswith("-")
        else f"The socket faces forwards by {v}; in most hips it is {u}."
    ),
    "neck_shaft_deg": lambda v, u: (
        f"On this hip the neck of the thigh bone meets its shaft at {v}; "
        f"in most hips the angle is {u}."
    ),
    "neck_shaft_projected_deg": lambda v, u: (
        f"On an X-ray the neck of the thigh bone meets its shaft at {v}; "
        f"in most hips the angle is {u}."
    ),
    "femoral_version_deg": lambda v, u: (
        f"The thigh bone is twisted backwards by {v.lstrip('-')} between hip and knee; "
        f"in most people it is twisted forwards by {u}."
        if v.startswith("-")
        else f"The thigh bone is twisted forwards by {v} between hip and knee; "
        f"in most people it is {u}."
    ),
}

_PELVIC_KEYS = ("lcea_deg", "tonnis_deg", "extrusion_index_pct", "acetabular_version_deg")
_FEMORAL_KEYS = ("neck_shaft_deg", "neck_shaft_projected_deg", "femoral_version_deg")


def _personal(kind: str, values: Mapping[str, Any] | None) -> list[str]:
    """Up to :data:`MAX_PERSONAL` sentences quoting this hip's numbers."""
    if not values:
        return []
    keys = _FEMORAL_KEYS if kind == "femoral" else _PELVIC_KEYS
    out = []
    for key in keys:
        if key == "neck_shaft_projected_deg" and _value(values, "neck_shaft_deg") is not None:
            continue  # the 3D angle is already quoted
        info = BY_KEY.get(key)
        x = _value(values, key)
        usual = _usual(info) if info is not None else None
        if x is None or usual is None:
            continue
        out.append(_PERSONAL[key](_number(x, info.unit), usual))
        if len(out) == MAX_PERSONAL:
            break
    return out


def _generic_numbers(kind: str) -> str:
    """What the key numbers mean, with the usual range from the reference."""
    if kind == "femoral":
        nsa = _usual(BY_KEY["neck_shaft_deg"])
        twist = _usual(BY_KEY["femoral_version_deg"])
        return (
            f"Doctors measure the angle between the neck and the shaft, usually {nsa}, "
            f"and the twist, usually {twist}."
        )
    lcea = _usual(BY_KEY["lcea_deg"])
    return (
        f"Doctors measure how far the roof reaches over the ball as an angle; "
        f"in most hips it is {lcea}, and a smaller angle means less cover."
    )


_WHY: dict[str, tuple[str, str]] = {
    # (the condition, the aim of this operation)
    "pao": (
        "In hip dysplasia the socket is too shallow, so its roof covers too little of "
        "the ball at the top of the thigh bone.",
        "This operation turns the socket to cover the ball better and keep your own hip.",
    ),
    "triple": (
        "In hip dysplasia the socket is too shallow, so its roof covers too little of "
        "the ball at the top of the thigh bone.",
        "This operation turns the socket to cover the ball; it suits older children and "
        "young adults.",
    ),
    "salter": (
        "In hip dysplasia the socket is too shallow, so its roof covers too little of "
        "the ball at the top of the thigh bone.",
        "In a young child, tilting the socket forwards and outwards lets the hip grow "
        "into a better shape.",
    ),
    "chiari": (
        "In hip dysplasia the socket is too shallow, so its roof covers too little of "
        "the ball at the top of the thigh bone.",
        "When the socket cannot be turned, this operation makes a new roof from the pelvis itself.",
    ),
    "rao": (
        "In hip dysplasia the socket is too shallow, so its roof covers too little of "
        "the ball at the top of the thigh bone.",
        "This operation turns the socket, in a curved shell of bone, to cover the ball better.",
    ),
    "femoral": (
        "Here the problem is the thigh bone (femur): the angle of its neck, or its twist "
        "between hip and knee, differs from usual.",
        "Changing that angle or twist helps the ball sit better in the socket.",
    ),
}


def _why(kind: str, values: Mapping[str, Any] | None) -> str:
    condition, aim = _WHY[kind]
    numbers = _personal(kind, values) or [_generic_numbers(kind)]
    return " ".join([condition, *numbers, aim])


# --------------------------------------------------------------------------- #
# The other steps
# --------------------------------------------------------------------------- #

_IMAGING = (
    "First your surgeon asks about your symptoms and examines your hip. "
    "X-rays show the shape of the socket and the ball. "
    "A CT scan gives a 3D picture of the bone, and an MRI scan shows the cartilage "
    "and soft tissues. "
    "The team uses these pictures to plan the cuts and the new position. "
    "The numbers in this app are a teaching aid, not a diagnosis."
)

_ANAESTHESIA = (
    "You are fully asleep for the whole operation (general anaesthesia). "
    "Sometimes an injection that numbs the nerves of the leg (a regional block) is "
    "added, so there is less pain afterwards. "
    "The anaesthetist, the doctor who keeps you safe and asleep, will explain the plan "
    "before the day."
)

_INCISION: dict[str, str] = {
    "pao": (
        "The surgeon opens the skin at the front of the hip, starting near the bony "
        "point you can feel at the front of the pelvis. "
        "The muscles are moved aside rather than cut where possible, to reach the bone "
        "around the socket."
    ),
    "triple": (
        "The surgeon usually makes two or three openings in the skin. "
        "One is at the front of the hip; the others are near the groin or the buttock, "
        "so that each bone can be reached."
    ),
    "salter": (
        "The surgeon opens the skin at the front of the hip, along the upper edge of "
        "the pelvis. "
        "The muscles are eased off the bone to reach the area just above the socket."
    ),
    "chiari": (
        "The surgeon opens the skin at the side and front of the hip. "
        "The muscles are eased aside to reach the bone just above the joint."
    ),
    "rao": (
        "The surgeon opens the skin at the side of the hip, curving around the bony "
        "bump at the top of the thigh bone. "
        "This gives room to work all around the socket."
    ),
    "femoral": (
        "The surgeon opens the skin along the outer side of the upper thigh, just "
        "below the hip. "
        "The thigh muscle is lifted off the bone to reach it."
    ),
}

_CUTS: dict[str, str] = {
    "pao": (
        "The surgeon makes four cuts in the pelvis, all around the socket: above it, "
        "behind it, and through the two thinner bones below it. "
        "The strong back part of the pelvis is not cut, so the pelvis stays stable. "
        "The socket is now a separate piece of bone."
    ),
    "triple": (
        "The surgeon makes three cuts: one through the hip bone above the socket, and "
        "one through each of the two thin bones below it. "
        "These are the pubic bone at the front and the sitting bone at the back. "
        "A large piece of bone with the socket in it comes free."
    ),
    "salter": (
        "The surgeon makes one cut, straight through the hip bone just above the "
        "socket. "
        "It runs from a notch at the back of the bone to the front. "
        "Nothing below the socket is cut."
    ),
    "chiari": (
        "The surgeon makes one cut through the pelvis just above the socket, rising "
        "slightly towards the middle of the body. "
        "The cut separates the bone above the hip from the socket below it."
    ),
    "rao": (
        "The surgeon makes one curved cut around the socket, shaped like a bowl. "
        "The cut keeps the same distance from the ball all the way round. "
        "The socket comes free with a shell of bone around it."
    ),
    "femoral": (
        "The surgeon makes one cut across the thigh bone, just below the ball and neck. "
        "It lies near a small bony bump on the inner side, called the lesser "
        "trochanter. "
        "Sometimes a thin wedge of bone is taken out, so the angle can change."
    ),
}

_TURN: dict[str, str] = {
    "pao": (
        "The freed piece is turned over the ball, mostly outwards and a little forwards. "
        "The roof of the socket now covers more of the ball. "
        "It may also be moved a few millimetres towards the middle. "
        "X-rays during the operation check the new position."
    ),
    "triple": (
        "The freed piece is turned outwards and forwards over the ball. "
        "The roof of the socket now covers more of the ball. "
        "X-rays during the operation check the new position."
    ),
    "salter": (
        "The whole lower part of the hip bone, with the socket, swings forwards and "
        "outwards like a door. "
        "Its hinge is the joint at the front of the pelvis. "
        "A gap opens above the socket, and the roof now covers more of the ball."
    ),
    "chiari": (
        "The part below the cut, with the socket and the ball, is shifted towards the "
        "middle of the body. "
        "So the pelvis above the cut slides out over the ball like a shelf and becomes "
        "its new roof. "
        "The soft tissue caught between them slowly toughens to carry weight."
    ),
    "rao": (
        "The shell is turned along the curved cut, outwards and forwards over the ball, "
        "like a cup turning in its saucer. "
        "The roof of the socket now covers more of the ball. "
        "X-rays during the operation check the new position."
    ),
    "femoral": (
        "The upper part of the thigh bone is turned to a new position. "
        "Tilting it changes the angle between the neck and the shaft. "
        "Turning it around the bone's length changes its twist. "
        "Either way, the ball sits better in the socket."
    ),
}

_FIXATION: dict[str, str] = {
    "pao": (
        "The piece is held in its new place with a few long metal screws through the "
        "pelvis. "
        "They hold it still while the bone heals. "
        "The screws often stay in for good, but can be taken out later if they bother you."
    ),
    "triple": (
        "Each cut is held with metal screws, and sometimes a small plate. "
        "They keep the piece still while the bone heals."
    ),
    "salter": (
        "A wedge of bone, usually taken from the top of the same hip bone, is pushed "
        "into the gap to keep it open. "
        "Two or three metal pins pass through it and hold everything still. "
        "The pins are usually removed later in a short operation."
    ),
    "chiari": (
        "Metal screws hold the two parts of the pelvis in their new positions. "
        "They keep the bone still while it heals."
    ),
    "rao": (
        "The shell is held in its new place with metal screws or pins. "
        "Small gaps may be filled with bone chips to help healing."
    ),
    "femoral": (
        "A metal plate is laid along the outer side of the thigh bone. "
        "Screws fix it above and below the cut, so the two parts cannot move while they "
        "heal. "
        "Some people have the plate taken out once the bone has healed."
    ),
}

_CLOSING = (
    "The muscles and deeper layers are put back in place and closed. "
    "The skin is closed with stitches or small metal clips (staples). "
    "A clean dressing covers the wound. "
    "Clips and some stitches are removed after about two weeks; others dissolve on "
    "their own."
)

_RECOVERY = (
    "Most people stay in hospital for a few days. "
    "You then walk with crutches, putting only part of your weight on the leg, for "
    "several weeks. "
    "The bone usually heals in about 6 to 12 weeks. "
    "A physiotherapist shows you exercises to rebuild strength and movement. "
    "Getting back to full activity usually takes several months."
)

_RECOVERY_CHILD = (
    "Most children stay in hospital for a few days. "
    "A young child may wear a hip cast for some weeks; an older child uses crutches, "
    "putting only part of their weight on the leg. "
    "The bone usually heals in about 6 to 12 weeks. "
    "Physiotherapy then helps rebuild strength, and full recovery usually takes some "
    "months."
)

_RISKS = (
    "Every operation carries some risk. "
    "For this one the main risks are infection, a blood clot in a leg vein, harm to a "
    "nerve or a blood vessel, and bone that is slow to heal. "
    "Sometimes another operation is needed later. "
    "Your surgeon will talk these through with you and explain how likely each one is."
)


#: Internal rotation of the thigh at 90° flexion before bone meets bone, degrees,
#: in 3D bone simulations: healthy hips and hips that catch (symptomatic
#: femoroacetabular impingement), Audenaert 2012 (DESIGN.md section 8.3).
IR90_HEALTHY_DEG = 27.9
IR90_IMPINGING_DEG = 12.3

_TOO_FAR: dict[str, str] = {
    "socket": (
        "More turn is not better. A socket turned too far covers the front of the ball "
        "so much that its rim meets the neck of the thigh bone when you bend your hip and "
        "turn your knee inwards. This catching, called impingement, causes pain and wears "
        "the joint."
    ),
    "chiari": (
        "More is not better. A new roof placed too far forward meets the neck of the thigh "
        "bone when you bend your hip and turn your knee inwards. This catching, called "
        "impingement, causes pain and wears the joint."
    ),
    "femoral": (
        "More turn is not better. A thigh bone turned too far brings its neck close to the "
        "front of the socket, so bone meets bone when you bend your hip and turn your knee "
        "inwards. This catching, called impingement, causes pain and wears the joint."
    ),
}


def _too_far(kind: str, rom: Mapping[str, Any] | None) -> str:
    """Why over-correction harms, with this plan's inward turn at 90° flexion if known."""
    group = kind if kind in ("chiari", "femoral") else "socket"
    before = _finite_or_none((rom or {}).get("before"))
    after = _finite_or_none((rom or {}).get("after"))
    if before is not None and after is not None:
        numbers = (
            f"With this plan, with the hip bent to a right angle, your thigh turns inwards "
            f"{after:.0f}° before bone meets bone, against {before:.0f}° now (bone only; "
            f"about {IR90_HEALTHY_DEG:.0f}° in healthy hips)."
        )
    else:
        numbers = (
            f"With the hip bent to a right angle, a healthy thigh turns inwards about "
            f"{IR90_HEALTHY_DEG:.0f}° before bone meets bone, one that catches about "
            f"{IR90_IMPINGING_DEG:.0f}°."
        )
    return f"{_TOO_FAR[group]} {numbers}"


def _finite_or_none(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _check_kind(kind: object) -> str:
    name = kind.strip().lower() if isinstance(kind, str) else None
    if name not in KINDS:
        msg = f"unknown kind of operation {kind!r}; expected one of {', '.join(KINDS)}"
        raise InputError(msg)
    return name


def steps(
    kind: str,
    values: Mapping[str, Any] | None = None,
    rom: Mapping[str, Any] | None = None,
) -> tuple[Step, ...]:
    """The whole operation for a patient, step by step, in order.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS` (case-insensitive): ``"pao"``, ``"triple"``,
        ``"salter"``, ``"chiari"``, ``"rao"`` (the acetabular osteotomies of
        :data:`hipviz.osteotomy.PROCEDURES`) or ``"femoral"`` (an
        intertrochanteric varus/valgus or derotation osteotomy of the upper
        thigh bone).
    values : mapping, optional
        Measures of this hip, keyed as ``hipviz measure --json`` (e.g.
        ``lcea_deg``, ``tonnis_deg``, ``neck_shaft_deg``,
        ``femoral_version_deg``). Up to :data:`MAX_PERSONAL` of those relevant
        to ``kind`` are quoted in the 'why' step, each with the usual range
        from :data:`hipviz.reference.MEASURES`. Missing or None values are
        left out.
    rom : mapping, optional
        ``{"before": deg, "after": deg}``: internal rotation at 90° flexion
        before bone meets bone (``rom_deg["internal_rotation_90"]`` of
        ``hipviz rom`` / ``hipviz simulate --rom``), before and after the plan;
        quoted in the 'too far' step. Without it (or with None values) the
        step quotes the reference values.

    Returns
    -------
    tuple of Step
        One step per entry of :data:`STEP_KEYS`, in that order.

    Raises
    ------
    hipviz.errors.InputError
        For an unknown ``kind``.
    """
    kind = _check_kind(kind)
    texts = {
        "why": _why(kind, values),
        "imaging": _IMAGING,
        "anaesthesia": _ANAESTHESIA,
        "incision": _INCISION[kind],
        "cuts": _CUTS[kind],
        "turn": _TURN[kind],
        "too_far": _too_far(kind, rom),
        "fixation": _FIXATION[kind],
        "closing": _CLOSING,
        "recovery": _RECOVERY_CHILD if kind == "salter" else _RECOVERY,
        "risks": _RISKS,
    }
    titles = {**_TITLES, "turn": _TURN_TITLES[kind]}
    return tuple(Step(key, titles[key], texts[key], _SCENE_OF[key]) for key in STEP_KEYS)


# --------------------------------------------------------------------------- #
# The pressure on the joint, before and after (a load chosen in the app)
# --------------------------------------------------------------------------- #

#: Key of the pressure step (shown after the move when a load is chosen).
PRESSURE_STEP = "pressure"
#: Each load of :data:`hipviz.loads.LOAD_NAMES` as a patient would say it.
LOAD_PHRASES: dict[str, str] = {
    "walking": "Each step when walking",
    "one-leg-stance": "Standing on one leg",
    "standing-up": "Standing up from a chair",
    "pauwels": "Standing on one leg",
}
#: Area ratios read as "about as large" (no change worth a sentence).
SAME_AREA = (0.9, 1.1)
#: Peak pressures closer than this read as "stays about", MPa.
SAME_PEAK_MPA = 0.3


def _mpa(x: float) -> str:
    """A pressure in plain words: '19', '2.4' (MPa)."""
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"


def _times(ratio: float) -> str:
    if 1.85 <= ratio < 2.15:
        return "twice"
    if 2.85 <= ratio < 3.15:
        return "three times"
    return f"{ratio:.1f} times"


def pressure_step(
    before: Mapping[str, Any],
    after: Mapping[str, Any] | None,
    load: str = "one-leg-stance",
) -> Step:
    """The step that tells the patient how the weight on the joint changes, from the numbers.

    Parameters
    ----------
    before, after : mapping
        ``contact_peak_mpa``, ``contact_mean_mpa``, ``contact_area_mm2`` and
        ``joint_force_bw`` before and after the move (``after`` None or its
        values None: nothing moved, or no pressure after).
    load : str
        The load's name (:data:`hipviz.loads.LOAD_NAMES`), said in words
        (:data:`LOAD_PHRASES`).

    Returns
    -------
    Step
        Key :data:`PRESSURE_STEP`, scene ``"after"``; e.g. "the weight now
        spreads over a roof twice as large; the highest pressure falls from
        19 to 2 MPa".
    """
    pb, ab = _value(before, "contact_peak_mpa"), _value(before, "contact_area_mm2")
    pa = None if after is None else _value(after, "contact_peak_mpa")
    aa = None if after is None else _value(after, "contact_area_mm2")
    bw = _value(after or before, "joint_force_bw")
    phrase = LOAD_PHRASES.get(load, "Standing and walking")
    head = (
        f"{phrase} presses the ball into the socket with about {bw:.1f} times your body weight. "
        if bw is not None
        else ""
    )
    if pb is None or ab is None:
        text = head + "The pressure on the joint could not be worked out for this hip."
    elif pa is None or aa is None:
        text = head + (
            f"Today the weight rests on {ab / 100:.0f} square centimetres of the socket, and the "
            f"highest pressure is {_mpa(pb)} MPa (the colours: blue is light pressure, red "
            "is high)."
        )
    else:
        ratio = aa / ab if ab > 0 else float("inf")
        if ratio >= SAME_AREA[1]:
            spread = f"the weight now spreads over a roof {_times(ratio)} as large"
        elif ratio <= SAME_AREA[0]:
            spread = f"the weight now rests on a smaller part of the socket ({ratio:.0%} of before)"
        else:
            spread = "the weight rests on about as much of the socket as before"
        if pa <= pb - SAME_PEAK_MPA:
            peak = f"the highest pressure falls from {_mpa(pb)} to {_mpa(pa)} MPa"
        elif pa >= pb + SAME_PEAK_MPA:
            peak = f"the highest pressure rises from {_mpa(pb)} to {_mpa(pa)} MPa"
        else:
            peak = f"the highest pressure stays about {_mpa(pa)} MPa"
        text = head + (
            f"After the turn, {spread}; {peak}. The colours show it: blue is light pressure, "
            "red is high. Pressure spread over more of the socket is easier on the cartilage."
        )
    return Step(PRESSURE_STEP, "Where the weight presses", text, "after")
