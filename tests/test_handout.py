"""``hipviz handout`` and ``hipviz report``: a self-contained HTML file and an A4 PDF.

The handout must open with no server and no network: nothing in it may point
at a host, and the only ``http`` text allowed is inside the vendored three.js
(its own source comments, byte for byte as in ``hipviz/vendor``) and the
licence comment. Its plan numbers and measures are those of ``hipviz simulate``.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import re
import shutil
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from hipviz import handout, report
from hipviz.cli import main

MAX_BYTES = 8_000_000
PLAN = ["--case", "dysplastic", "--preset", "pao", "--pao", "lateral=20"]
VALIDATION = Path(__file__).resolve().parents[2] / "shared" / "validation"
CT = VALIDATION / "lhdl_ct_staple"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


class _Links(HTMLParser):
    """Every tag attribute that can make a browser fetch, and the meta tags."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.meta: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "poster", "data", "background"):
                self.links.append((tag, name, value or ""))
        if tag == "meta":
            self.meta.append({k: v or "" for k, v in attrs})


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The handout of a planned PAO (written by the CLI) and the same plan's ``--json``."""
    folder = tmp_path_factory.mktemp("handout")
    path = folder / "plan.html"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(["handout", *PLAN, "--out", str(path)]) == 0
    assert printed.getvalue().startswith(f"wrote {path} (")
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(["simulate", *PLAN, "--json"]) == 0
    result = json.loads(printed.getvalue())
    return path, path.read_text(encoding="utf-8"), result


def outside_vendored(text: str) -> str:
    """The handout without the vendored three.js and its licence comment (each exactly once)."""
    three = handout.vendored("three.cjs")
    licence = handout.vendored("three.LICENSE").replace("*/", "* /")
    assert text.count(three) == 1
    assert text.count(licence) == 1
    rest = text.replace(three, "").replace(licence, "")
    return re.sub(r"/\* three\.js [^\n]*\n", "", rest)


def test_handout_is_self_contained(made):
    path, text, _ = made
    size = path.stat().st_size
    assert 0 < size <= MAX_BYTES, size
    parser = _Links()
    parser.feed(text)
    assert parser.links == [], parser.links  # no src=, href=, ... at all
    rest = outside_vendored(text)
    assert "http" not in rest.lower().replace('http-equiv="content-security-policy"', "")
    csp = [m["content"] for m in parser.meta if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp == [handout.CSP]
    assert "default-src 'none'" in csp[0]
    assert not re.search(r"[\w-]+\.[a-z]{2,}", csp[0].replace("'", " "))  # no host names


def test_handout_holds_the_plan_and_its_numbers(made):
    _, text, result = made
    assert "lateral +20°" in text
    assert "Periacetabular osteotomy" in text
    before, after = result["before"], result["after"]
    for key in ("lcea_deg", "tonnis_deg", "acea_deg"):
        assert f"{before[key]:.1f}°" in text and f"{after[key]:.1f}°" in text, key
    assert "not a medical device" in text
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\d">', text)
    kind_title = "Turning the hip socket (periacetabular osteotomy, PAO)"
    assert kind_title in text and "Why this operation" in text


def test_handout_payload_moves_the_fragment_and_the_head_with_it(made):
    _, text, result = made
    data = json.loads(re.search(r'id="hv-data">(.*?)</script>', text, re.S).group(1))
    assert 0 < data["triangles"] <= handout.HANDOUT_TRIANGLES
    pieces = {p["name"]: p for p in data["pieces"]}
    assert set(pieces) == {"pelvis_rest", "acetabular_fragment", "femur"}

    def pose(name: str, when: str) -> np.ndarray:
        return np.asarray(pieces[name][f"pose_{when}"]).reshape(4, 4).T  # sent column-major

    assert np.allclose(pose("pelvis_rest", "after"), np.eye(4))
    assert not np.allclose(pose("acetabular_fragment", "after")[:3, :3], np.eye(3))
    femur = pose("femur", "after")  # the head follows the socket: a translation
    assert np.allclose(femur[:3, :3], np.eye(3))
    shift = np.linalg.norm(list(result["hip_center_shift_mm"].values()))
    assert np.linalg.norm(femur[:3, 3]) == pytest.approx(shift, abs=0.01)
    for name in pieces:
        assert np.allclose(pose(name, "before"), np.eye(4))
    assert pieces["femur"]["colors_before"] and pieces["femur"]["colors_after"]


def test_handout_escapes_user_text(made):
    _, text, result = made
    bad = '<img src=x onerror="alert(1)">.stl'
    facts = report.plan_facts({**result, "sources": {"femur": bad}}, side="left")
    assert any(bad in v for _, v in facts)
    page = handout.handout_html(
        _sim_for(made), None, facts=facts, title="<script>alert(2)</script>", max_triangles=2000
    )
    assert bad not in page and "<script>alert(2)" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;.stl" in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    parser = _Links()
    parser.feed(page)
    assert parser.links == []


def test_handout_escapes_a_markup_file_name(capsys, tmp_path):
    code, _, err = run(
        capsys, "export", "--out", str(tmp_path), "--side", "left", "--subdivisions", "4"
    )
    assert code == 0, err
    bad = '<img src=x onerror="alert(1)">'
    pelvis = tmp_path / f"{bad}pelvis.stl"
    femur = tmp_path / f"{bad}femur.stl"
    (tmp_path / "pelvis.stl").rename(pelvis)
    (tmp_path / "femur_left.stl").rename(femur)
    out_file = tmp_path / "h.html"
    argv = ["handout", "--pelvis", str(pelvis), "--femur", str(femur), "--out", str(out_file)]
    code, _, err = run(capsys, *argv, "--pao", "lateral=10")
    assert code == 0, err
    text = out_file.read_text(encoding="utf-8")
    assert bad not in text
    assert html.escape(str(femur)) in text
    parser = _Links()
    parser.feed(text)
    assert parser.links == []


_SIMS: dict = {}


def _sim_for(made):
    """A small simulation of the same case (unplanned), built once."""
    if "sim" not in _SIMS:
        from hipviz import cases
        from hipviz.simulate import Simulation

        hip = cases.case_hip("dysplastic", side="left", subdivisions=4)
        _SIMS["sim"] = Simulation(hip.pelvis, hip.femur, side="left")
    return _SIMS["sim"]


def test_handout_budget_is_kept(made):
    sim = _sim_for(made)
    data = handout.mesh_payload(sim, None, max_triangles=3000)
    assert data["triangles"] <= 3000 * 1.05
    assert data["triangles"] > 1000  # decimated, not emptied
    assert {p["name"] for p in data["pieces"]} == {"pelvis", "femur"}


@pytest.mark.validation
@pytest.mark.slow
@pytest.mark.skipif(not CT.exists(), reason="validation specimens absent")
def test_handout_of_the_ct_specimen_fits(capsys, tmp_path):
    path = tmp_path / "ct.html"
    code, out, err = run(
        capsys,
        "handout",
        "--pelvis",
        str(CT / "pelvis_no_sacrum.ply"),
        "--femur",
        str(CT / "femur_r.ply"),
        "--preset",
        "pao",
        "--pao",
        "lateral=15",
        "--out",
        str(path),
    )
    assert code == 0, err
    assert 0 < path.stat().st_size <= MAX_BYTES
    text = path.read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="hv-data">(.*?)</script>', text, re.S).group(1))
    assert handout.HANDOUT_TRIANGLES * 0.8 <= data["triangles"] <= handout.HANDOUT_TRIANGLES
    parser = _Links()
    parser.feed(text)
    assert parser.links == []
    assert "wrote" in out


def test_handout_without_a_plan_shows_the_hip_as_it_is(capsys, tmp_path):
    path = tmp_path / "hip.html"
    argv = ["handout", "--case", "dysplastic", "--subdivisions", "4", "--out", str(path)]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    text = path.read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="hv-data">(.*?)</script>', text, re.S).group(1))
    assert {p["name"] for p in data["pieces"]} == {"pelvis", "femur"}
    for p in data["pieces"]:
        assert p["pose_before"] == p["pose_after"]
    assert "no move: the hip as it is" in text
    assert "No operation is planned" in text
    start = text.index('<table class="hv-measures">')
    table = text[start : text.index("</table>", start)]
    assert '<tr data-key="lcea_deg"' in table and 'class="hv-before"' not in table


def test_pictures_take_a_camera():
    from hipviz import render

    sim = _sim_for(None)
    sc = render.scene(sim, None)
    size = (160, 120)
    side = render.camera("lateral", sc.side, sc.focal_point)
    by_view = render.picture(sc, view="lateral", window_size=size)
    by_camera = render.picture(sc, view="anterior", window_size=size, camera_position=side)
    front = render.picture(sc, view="anterior", window_size=size)
    assert np.abs(by_camera.astype(int) - by_view).max() <= 2
    assert np.abs(by_camera.astype(int) - front).mean() > 5
    pics = report.plan_pictures(sim, None, views=("anterior",), camera=side, window_size=size)
    assert list(pics) == ["Before (front)", "Before (your view)"]
    assert all(png.startswith(b"\x89PNG") for png in pics.values())


# ---------------------------------------------------------------- PDF


HEX = rb"[0-9a-fA-F]+"


def pdf_text_runs(data: bytes) -> list[str]:
    """The text of every TJ/Tj run of a PDF, decoded through its fonts' ToUnicode maps.

    Each run is decoded with every map that covers all its glyph codes (the
    fonts are subsets of few faces): a value found in a run is text a reader
    can select and copy.
    """
    streams = []
    for raw in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            streams.append(zlib.decompress(raw))
        except zlib.error:
            continue
    cmaps = []
    for s in streams:
        if b"beginbfchar" not in s and b"beginbfrange" not in s:
            continue
        table: dict[int, str] = {}
        for block in re.findall(rb"beginbfchar(.*?)endbfchar", s, re.S):
            for src, dst in re.findall(rb"<(%s)>[ \t]*<(%s)>" % (HEX, HEX), block):
                table[int(src, 16)] = bytes.fromhex(dst.decode()).decode("utf-16-be")
        for block in re.findall(rb"beginbfrange(.*?)endbfrange", s, re.S):
            for lo, hi, dst in re.findall(rb"<(%s)>[ \t]*<(%s)>[ \t]*<(%s)>" % ((HEX,) * 3), block):
                start = int(dst, 16)
                for k, code in enumerate(range(int(lo, 16), int(hi, 16) + 1)):
                    table[code] = chr(start + k)
        cmaps.append(table)
    runs = []
    for s in streams:
        for body in re.findall(rb"\[(.*?)\]\s*TJ|<([0-9a-fA-F]+)>\s*Tj", s, re.S):
            hexes = re.findall(rb"<([0-9a-fA-F]+)>", body[0] or b"<" + body[1] + b">")
            codes = [int(h[i : i + 4], 16) for h in hexes for i in range(0, len(h), 4)]
            for table in cmaps:
                if all(c in table for c in codes):
                    runs.append("".join(table[c] for c in codes))
    return runs


@pytest.fixture(scope="module")
def pdf(tmp_path_factory, made):
    path = tmp_path_factory.mktemp("report") / "plan.pdf"
    assert main(["report", *PLAN, "--out", str(path)]) == 0
    return path.read_bytes()


def test_report_pdf_is_a4_with_selectable_values(pdf, made):
    _, _, result = made
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    text = b"".join(
        zlib.decompress(s) if not s.startswith(b"/") else s
        for s in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S)
        if _inflates(s)
    )
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf + text)
    assert boxes
    for w, h in boxes:  # A4 is 210 x 297 mm = 595.28 x 841.89 pt
        assert abs(float(w) - 595.28) < 0.5 and abs(float(h) - 841.89) < 0.5
    runs = " ".join(pdf_text_runs(pdf))
    for key in ("lcea_deg", "tonnis_deg"):
        for when in ("before", "after"):
            assert f"{result[when][key]:.1f}°" in runs, (key, when)
    assert "lateral +20°" in runs
    assert "LCEA" in runs and "Method" in runs
    if shutil.which("pdftotext"):
        plain = subprocess.run(
            ["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True
        ).stdout.decode()
        assert f"{result['after']['lcea_deg']:.1f}°" in plain


def _inflates(raw: bytes) -> bool:
    try:
        zlib.decompress(raw)
    except zlib.error:
        return False
    return True


# ---------------------------------------------------------------- failures


def _one_line(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["handout", "--out", "plan.txt"], ["--out plan.txt", ".html"]),
        (["report", "--out", "plan.docx"], ["--out plan.docx", ".pdf"]),
        (["handout", "--out", "{missing}/plan.html"], ["does not exist"]),
        (["handout", "--out", "{folder}/sub.html"], ["is a folder"]),
        (["handout", "--pao", "lateral=x", "--out", "{folder}/p.html"], ["--pao"]),
        (["report", "--preset", "nope", "--out", "{folder}/p.pdf"], ["--preset"]),
        (["handout"], ["--out"]),
    ],
)
def test_failures_are_one_line(capsys, tmp_path, argv, needles):
    (tmp_path / "sub.html").mkdir()
    argv = [a.format(missing=tmp_path / "no" / "such", folder=tmp_path) for a in argv]
    _one_line(*run(capsys, *argv), *needles)
    assert [p.name for p in tmp_path.iterdir()] == ["sub.html"]  # nothing written
