"""Explain mode: every kind told in order, short plain texts, own words, numbers from reference."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hipviz import explain
from hipviz.errors import InputError
from hipviz.explain import KINDS, SCENES, STEP_KEYS, Step, condition_summary, steps
from hipviz.reference import BY_KEY, MEASURES

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
SHINGLE = 8
MAX_WORDS = 90

SCENE_OF = {
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

#: A dysplastic hip with a twisted femur: every measure with a band has a value.
VALUES = {
    "lcea_deg": 14.0,
    "acea_deg": 40.0,
    "acetabular_version_deg": 5.0,
    "acetabular_version_cranial_deg": -3.0,
    "tonnis_deg": 18.0,
    "extrusion_index_pct": 35.0,
    "coverage_pct": {"upper_hemisphere": 62.0, "whole": 41.0},
    "neck_shaft_deg": 142.0,
    "neck_shaft_projected_deg": 139.0,
    "femoral_version_deg": 38.0,
    "alpha_deg": 48.0,
    "sphericity_mm": 1.2,
    "mckibbin_deg": 43.0,
    "head_radius_mm": 23.0,
}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower().replace("’", "'"))


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def _all_texts() -> list[str]:
    out = []
    for kind in KINDS:
        for values in (None, VALUES):
            out += [s.text for s in steps(kind, values)]
            out += [s.title for s in steps(kind, values)]
    out += condition_summary(VALUES)
    out += list(explain.KIND_TITLES.values())
    return out


def _normal(key: str):
    return next(b for b in BY_KEY[key].bands if b.level == "normal")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("values", [None, {}, VALUES], ids=["none", "empty", "values"])
def test_every_kind_gives_all_steps_in_order(kind, values):
    out = steps(kind, values)
    assert isinstance(out, tuple)
    assert all(isinstance(s, Step) for s in out)
    assert tuple(s.key for s in out) == STEP_KEYS
    assert [s.scene for s in out] == [SCENE_OF[k] for k in STEP_KEYS]
    assert {s.scene for s in out} <= set(SCENES)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("values", [None, VALUES], ids=["none", "values"])
def test_texts_are_short_and_plain(kind, values):
    for s in steps(kind, values):
        assert s.title.strip() and len(s.title.split()) <= 6, s.title
        assert s.text.strip(), s.key
        n = len(s.text.split())
        assert n <= MAX_WORDS, f"{kind}/{s.key}: {n} words"
        assert 2 <= len(_sentences(s.text)) <= 5, f"{kind}/{s.key}: {s.text}"
        assert "\n" not in s.text and "  " not in s.text


def test_british_spelling_and_no_clinic():
    text = " ".join(_all_texts()).lower()
    for us in ("anesthe", "center", "orthoped", "physical therap", "pediatric"):
        assert us not in text, us
    for word in ("clinic", "appointment", "call today", "schedule", "our specialists"):
        assert word not in text, word


def test_no_seed_sentence_is_copied():
    if not SEEDS.is_dir():
        pytest.skip(f"seed texts not found at {SEEDS} (kept beside the repository, not in it)")
    seeds = sorted(SEEDS.glob("*.txt"))
    assert seeds, f"no seed texts in {SEEDS}"
    seed_shingles = set()
    for path in seeds:
        w = _words(path.read_text(encoding="utf-8"))
        seed_shingles |= {tuple(w[i : i + SHINGLE]) for i in range(len(w) - SHINGLE + 1)}
    copied = []
    for text in _all_texts():
        w = _words(text)
        copied += [
            " ".join(w[i : i + SHINGLE])
            for i in range(len(w) - SHINGLE + 1)
            if tuple(w[i : i + SHINGLE]) in seed_shingles
        ]
    assert not copied, copied


def test_shingle_check_can_fail():
    """The copy check finds a sentence lifted from a seed text."""
    if not SEEDS.is_dir():
        pytest.skip(f"seed texts not found at {SEEDS} (kept beside the repository, not in it)")
    text = sorted(SEEDS.glob("*.txt"))[0].read_text(encoding="utf-8")
    lifted = _sentences(" ".join(text.split()))[0]
    assert len(_words(lifted)) >= SHINGLE
    w = _words(lifted)
    assert tuple(w[:SHINGLE]) in {
        tuple(_words(text)[i : i + SHINGLE]) for i in range(len(_words(text)))
    }


@pytest.mark.parametrize("kind", ["", "PAOO", "hip replacement", None, 3])
def test_unknown_kind_raises(kind):
    with pytest.raises(InputError, match="expected one of pao, triple, salter") as info:
        steps(kind)
    assert "\n" not in str(info.value)
    assert "femoral" in str(info.value)


def test_kind_is_case_insensitive():
    assert steps("PAO") == steps("pao")


@pytest.mark.parametrize("kind", ["pao", "triple", "salter", "chiari", "rao"])
def test_values_personalise_why_for_pelvic_kinds(kind):
    why = steps(kind, {"lcea_deg": 14.0})[0]
    assert why.key == "why"
    assert "14°" in why.text
    band = _normal("lcea_deg")
    assert f"{band.low:g}°" in why.text
    assert why.text != steps(kind)[0].text
    # the femoral numbers do not belong to a pelvic operation
    assert "142°" not in steps(kind, VALUES)[0].text


def test_values_personalise_why_for_femoral():
    why = steps("femoral", {"neck_shaft_deg": 142.0, "femoral_version_deg": 38.0})[0]
    assert "142°" in why.text and "38°" in why.text
    nsa, twist = _normal("neck_shaft_deg"), _normal("femoral_version_deg")
    assert f"{nsa.low:g}° to {nsa.high:g}°" in why.text
    assert f"{twist.low:g}° to {twist.high:g}°" in why.text
    assert "14°" not in steps("femoral", VALUES)[0].text


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_why_stays_short_with_any_pair_of_values(kind, sign):
    keys = [
        "lcea_deg",
        "tonnis_deg",
        "extrusion_index_pct",
        "acetabular_version_deg",
        "neck_shaft_deg",
        "neck_shaft_projected_deg",
        "femoral_version_deg",
    ]
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            why = steps(kind, {a: sign * 123.4, b: sign * 56.7})[0].text
            assert len(why.split()) <= MAX_WORDS, why
            assert 2 <= len(_sentences(why)) <= 5, why
            assert "--" not in why and "by -" not in why, why


def test_backward_facing_is_said_in_words():
    why = steps("pao", {"acetabular_version_deg": -6.0})[0].text
    assert "faces backwards by 6°" in why
    why = steps("femoral", {"femoral_version_deg": -4.0})[0].text
    assert "twisted backwards by 4°" in why


def test_generic_why_quotes_the_reference_band():
    band = _normal("lcea_deg")
    assert f"{band.low:g}° to {band.high:g}°" in steps("pao")[0].text
    nsa = _normal("neck_shaft_deg")
    assert f"{nsa.low:g}° to {nsa.high:g}°" in steps("femoral")[0].text


def test_missing_and_none_values_are_left_out():
    plain = steps("pao")[0].text
    assert steps("pao", {"lcea_deg": None, "tonnis_deg": float("nan")})[0].text == plain
    assert steps("pao", {"lcea_deg": "n/a"})[0].text == plain
    only_tonnis = steps("pao", {"lcea_deg": None, "tonnis_deg": 18.0})[0].text
    assert "18°" in only_tonnis and "None" not in only_tonnis


def test_condition_summary_one_line_per_banded_value():
    lines = condition_summary(VALUES)
    banded = [m for m in MEASURES if m.bands]
    expected = [m for m in banded if m.key in VALUES]
    assert len(lines) == len(expected)
    for m, line in zip(expected, lines, strict=True):
        assert f"({m.short.replace(' (', ', ').rstrip(')')})" in line, line
        assert m.meaning in line
        assert "\n" not in line
    lcea = lines[0]
    assert lcea.startswith("Socket roof angle (LCEA) 14°")
    band = _normal("lcea_deg")
    assert f"usual is {band.low:g}° to {band.high:g}°" in lcea
    # measures without a band (ACEA, coverage, McKibbin, head radius) give no line
    assert not any("(ACEA)" in s or "(McKibbin)" in s or "(Coverage)" in s for s in lines)


def test_condition_summary_skips_none_and_missing():
    assert condition_summary({}) == []
    assert condition_summary({"lcea_deg": None, "tonnis_deg": None}) == []
    lines = condition_summary({"lcea_deg": None, "tonnis_deg": 5.0})
    assert len(lines) == 1 and "(Tönnis) 5°" in lines[0]
    # a normal value says so and needs no 'usual is'
    assert "usual range" in lines[0] and "usual is" not in lines[0]


def test_femoral_mentions_the_thigh_bone_and_pelvic_kinds_the_socket():
    femoral = " ".join(s.text for s in steps("femoral")).lower()
    assert "thigh bone" in femoral
    assert "lesser trochanter" in femoral and "plate" in femoral
    for kind in ("pao", "triple", "salter", "chiari", "rao"):
        text = " ".join(s.text for s in steps(kind)).lower()
        assert "socket" in text, kind


@pytest.mark.parametrize(
    ("kind", "cuts", "turn", "fixation"),
    [
        ("pao", "four cuts", "turned over the ball", "screws"),
        ("triple", "three cuts", "turned", "screws"),
        ("salter", "one cut", "hinge", "wedge of bone"),
        ("chiari", "one cut", "slides out over the ball", "screws"),
        ("rao", "curved cut", "shell is turned", "screws"),
        ("femoral", "one cut", "twist", "plate"),
    ],
)
def test_each_kind_describes_its_own_operation(kind, cuts, turn, fixation):
    by_key = {s.key: s.text for s in steps(kind)}
    assert cuts in by_key["cuts"]
    assert turn in by_key["turn"]
    assert fixation in by_key["fixation"]


def test_common_steps_say_what_the_brief_asks():
    by_key = {s.key: s.text for s in steps("pao")}
    assert "teaching aid, not a diagnosis" in by_key["imaging"]
    assert "X-ray" in by_key["imaging"] and "CT" in by_key["imaging"]
    assert "MRI" in by_key["imaging"]
    assert "general anaesthesia" in by_key["anaesthesia"]
    assert "regional block" in by_key["anaesthesia"]
    assert "staples" in by_key["closing"] and "dressing" in by_key["closing"]
    recovery = by_key["recovery"]
    assert "crutches" in recovery and "usually" in recovery and "6 to 12 weeks" in recovery
    risks = by_key["risks"]
    for word in ("infection", "clot", "nerve", "blood vessel", "slow to heal", "another"):
        assert word in risks, word
    assert "talk these through" in risks


def test_kinds_cover_the_procedures():
    pytest.importorskip("trimesh")
    from hipviz.osteotomy import PROCEDURES

    assert set(KINDS) == {*PROCEDURES, "femoral"}
    assert set(explain.KIND_TITLES) == set(KINDS)


def test_import_needs_no_renderer_or_web_stack():
    code = "import sys, hipviz.explain; print(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert not {"pyvista", "panel", "param", "vtk", "trimesh", "scipy"} & set(out.split())


@pytest.mark.parametrize("kind", KINDS)
def test_too_far_step_quotes_the_plans_inward_turn_at_90_degrees(kind):
    step = next(s for s in steps(kind, None, {"before": 62.2, "after": 13.2}) if s.key == "too_far")
    assert "13°" in step.text and "62°" in step.text and "bone only" in step.text
    assert step.text.index("13°") < step.text.index("62°")  # after, against before
    assert "impingement" in step.text


@pytest.mark.parametrize("rom", [None, {}, {"before": None, "after": 20.0}, {"before": "x"}])
def test_too_far_step_without_numbers_quotes_the_reference_values(rom):
    step = next(s for s in steps("pao", None, rom) if s.key == "too_far")
    assert f"{explain.IR90_HEALTHY_DEG:.0f}°" in step.text
    assert f"{explain.IR90_IMPINGING_DEG:.0f}°" in step.text
    assert "20°" not in step.text
