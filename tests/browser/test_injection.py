"""Nothing a link, a file name, a file or a typed label supplies runs or renders as markup.

A corpus of injection strings goes through every input of the app in a real
browser: link values (a case, a procedure, a slider value, unknown names),
the names of uploaded files (pelvis and femur), the bytes of uploaded files
and the labels field of a label-map upload. Each time: no dialog opens, the
string shows literally where the app quotes it, nothing it describes exists
in the page (looked for through every shadow root), the page reports no
Content-Security-Policy violation and still works.

The pages are served with hipviz's own security headers. A last test opens
``hipviz serve`` itself (in its own process) for a normal session and checks
the policy is there and nothing in the session breaks it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

pytest.importorskip("panel")
pytest.importorskip("pytest_playwright")

from test_app import (  # noqa: E402  (helpers of the app's browser tests)
    FIRST_PICTURE,
    case_select,
    load_button,
    on_server,
    open_app,
    value_text,
    wait_for,
)

# Skipped by conftest.py where /usr/bin/chromium is absent.
pytestmark = [pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]

CORPUS = {
    "script": "<script>alert(1)</script>",
    "img": "<img src=x onerror=alert(1)>",
    "svg": "<svg onload=alert(1)>",
    "iframe": '<iframe srcdoc="<script>alert(1)</script>">',
    "js-url": "javascript:alert(1)",
    "html-link": '<a href="javascript:alert(1)">x</a>',
    "md-link": "[x](javascript:alert(1))",
    "md-image": "![x](javascript:alert(1))",
    "style": "<style>body{display:none}</style>",
    "bold": "<b>bold</b>",
}

#: Everything the corpus could leave in the page, looked for through every
#: shadow root (Panel draws each pane in its own).
FIND_INJECTED = """() => {
  const found = []
  const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
      const tag = el.tagName.toLowerCase()
      const text = el.textContent || ""
      if (tag === "iframe" || tag === "object" || tag === "embed") found.push(tag)
      if (tag === "img" && /^(x|javascript:)/i.test(el.getAttribute("src") || ""))
        found.push("img src=" + el.getAttribute("src"))
      if (tag === "a" && /^\\s*javascript:/i.test(el.getAttribute("href") || ""))
        found.push("a href=" + el.getAttribute("href"))
      if (tag === "script" && text.includes("alert(1)")) found.push("script alert(1)")
      if (tag === "style" && text.includes("body{display:none}")) found.push("style body")
      if (tag === "b" && text === "bold") found.push("b bold")
      for (const attr of el.getAttributeNames())
        if (/^on/i.test(attr) && (el.getAttribute(attr) || "").includes("alert"))
          found.push(tag + " " + attr)
      if (el.shadowRoot) walk(el.shadowRoot)
    }
  }
  walk(document)
  return found
}"""

RECORD_CSP = """
window.__cspViolations = []
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI)
})
"""


def build_app() -> dict:
    from hipviz.app.main import create_app

    app = create_app()
    return {"app": app}


@pytest.fixture(scope="module")
def served(serve_with):
    """The app with hipviz serve's security headers."""
    from hipviz.app.web import SecurityHeaders

    return serve_with(build_app, transforms=[SecurityHeaders])


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": {"width": 1400, "height": 900}}


@pytest.fixture
def watched(page):
    """The page, recording dialogs, CSP violations and console errors."""
    seen = {"dialogs": [], "console": []}

    def on_dialog(dialog) -> None:
        seen["dialogs"].append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda m: seen["console"].append(f"{m.type}: {m.text}"))
    page.add_init_script(RECORD_CSP)
    page.seen = seen
    return page


def assert_inert(page) -> None:
    """No dialog opened, nothing injected exists, no CSP violation was reported."""
    assert page.seen["dialogs"] == [], page.seen["dialogs"]
    assert page.evaluate(FIND_INJECTED) == []
    assert page.evaluate("window.__cspViolations") == []
    csp = [m for m in page.seen["console"] if "Content Security Policy" in m]
    assert csp == [], csp


def error_text(page) -> str:
    alert = page.locator(".alert-danger p")
    return " ".join(alert.inner_text().split()) if alert.count() else ""


def wait_error(page, *parts: str, timeout: float = 30) -> str:
    """Wait until the error line shows each of ``parts``; return it."""
    wait_for(
        lambda: all(p in error_text(page) for p in parts),
        timeout,
        f"the error line to show {parts!r} (shows {error_text(page)!r})",
    )
    text = error_text(page)
    assert "\n" not in page.locator(".alert-danger p").inner_text().strip()
    return text


def still_works(page, session) -> None:
    """Another case loads: its measures show and the error line goes."""
    from hipviz.app.main import CASE_LABELS

    app = session["app"]
    target = "cam" if on_server(session, lambda: app.plan.case) != "cam" else "normal"
    case_select(page).select_option(CASE_LABELS[target])
    wait_for(lambda: on_server(session, lambda: app.plan.case) == target, 10, f"case {target}")
    wait_for(lambda: not page.locator(".alert-danger").is_visible(), 30, "the error to go")
    assert value_text(page, "lcea_deg").endswith("°")


def choose_files(page, session, files: dict[str, tuple[str, bytes]]) -> None:
    """Choose files ({"pelvis"|"femur": (name, bytes)}), wait until the server has them."""
    app = session["app"]
    if not load_button(page).is_visible():
        page.get_by_text("Your own meshes", exact=True).click()
    inputs = page.locator("input[type=file]")
    for role, (name, data) in files.items():
        inputs.nth(0 if role == "pelvis" else 1).set_input_files(
            files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}]
        )
    want = {role: name for role, (name, _) in files.items()}
    wait_for(
        lambda: (
            on_server(session, lambda: {r: app.controls.received().get(r) for r in want}) == want
        ),
        15,
        f"the server to receive {sorted(want.values())}",
    )


def quoted_shown(text: str, limit: int | None = None) -> str:
    """``text`` as a message quotes it (clamped, in quotes)."""
    from hipviz.app.text import QUOTE_CHARS, quoted

    return quoted(text, limit or QUOTE_CHARS)


def clamped_name(name: str) -> str:
    from hipviz.app.text import NAME_CHARS, clamp

    return clamp(name, NAME_CHARS)


# --- link values -------------------------------------------------------------

#: Where each corpus string goes in a link: selectors, sliders and unknown names.
SLOTS = ("case", "procedure", "pao_lateral", "fem_varus", None)


@pytest.mark.parametrize(
    "names", [list(CORPUS)[:5], list(CORPUS)[5:]], ids=["first-five", "last-five"]
)
def test_link_values_show_as_text(watched, served, names):
    page = watched
    fields, expect = [], []
    for slot, key in zip(SLOTS, names, strict=True):
        evil = CORPUS[key]
        if slot is None:  # an unknown name
            fields.append(f"{quote(evil, safe='')}=1")
            expect.append(f"unknown link parameter {quoted_shown(evil)}")
        else:
            fields.append(f"{slot}={quote(evil, safe='')}")
            expect.append(f"link parameter {slot}={quoted_shown(evil)} ignored")
    session = open_app(page, served, "&".join(fields))
    wait_error(page, *expect)
    assert_inert(page)
    still_works(page, session)
    assert_inert(page)


# --- file names --------------------------------------------------------------


@pytest.mark.parametrize("role", ["pelvis", "femur"])
def test_uploaded_file_names_show_as_text(watched, served, role):
    page = watched
    session = open_app(page, served, "case=dysplastic")
    for evil in CORPUS.values():
        name = f"{evil}.stl"
        if role == "pelvis":  # loaded first: its content is what fails
            files = {"pelvis": (name, b"solid x\nnot a mesh\n"), "femur": ("f.stl", b"x")}
        else:  # the pelvis passes its checks, the femur is empty
            files = {"pelvis": ("p.stl", b"solid x\n"), "femur": (name, b"")}
        choose_files(page, session, files)
        load_button(page).click()
        wait_error(page, clamped_name(name))
        assert_inert(page)
    still_works(page, session)
    assert_inert(page)


def test_names_of_loaded_files_show_as_text(watched, served, tmp_path):
    """A good upload: the 'your files' line quotes both names as text."""
    from hipviz.anatomy import builtin_hip

    page = watched
    session = open_app(page, served, "case=dysplastic")
    hip = builtin_hip(side="left")
    names = {"pelvis": f"{CORPUS['img']}.stl", "femur": f"{CORPUS['bold']}{CORPUS['svg']}.stl"}
    files = {}
    for role in ("pelvis", "femur"):
        path = tmp_path / f"{role}.stl"
        getattr(hip, role).export(path)
        files[role] = (names[role], path.read_bytes())
    choose_files(page, session, files)
    load_button(page).click()
    app = session["app"]
    wait_for(lambda: on_server(session, lambda: app.plan.case) == "upload", 60, "the upload")
    line = page.get_by_text("your files:")
    wait_for(line.is_visible, 60, "the 'your files' line")
    shown = " ".join(line.inner_text().split())
    assert shown == f"your files: {clamped_name(names['pelvis'])} + {clamped_name(names['femur'])}"
    assert_inert(page)


# --- file content ------------------------------------------------------------


def test_uploaded_markup_content_stays_inert(watched, served):
    page = watched
    session = open_app(page, served, "case=dysplastic")
    markup = "\n".join(CORPUS.values()).encode()
    for suffix in (".stl", ".obj", ".ply", ".off", ".vtp", ".nii"):
        name = f"markup{suffix}"
        choose_files(page, session, {"pelvis": (name, markup), "femur": ("f.stl", markup)})
        load_button(page).click()
        wait_error(page, name)
        assert_inert(page)
    still_works(page, session)


# --- the labels field --------------------------------------------------------


@pytest.mark.parametrize("field", ["pelvis", "femur"])
def test_labels_field_shows_as_text(watched, served, field):
    page = watched
    session = open_app(page, served, "case=dysplastic")
    app = session["app"]
    boxes = {
        "pelvis": (page.get_by_placeholder("e.g. 1,2"), app.controls.w_pelvis_labels),
        "femur": (page.get_by_placeholder("e.g. 3"), app.controls.w_femur_labels),
    }
    if not load_button(page).is_visible():
        page.get_by_text("Your own meshes", exact=True).click()
    if field == "femur":  # a good pelvis field, so the femur's is the one read
        set_labels(page, session, *boxes["pelvis"], "1")
    box, widget = boxes[field]
    for evil in CORPUS.values():
        set_labels(page, session, box, widget, evil)
        # one label map holding both bones, given as the pelvis file
        choose_files(page, session, {"pelvis": ("both.nii", b"\x00" * 400)})
        load_button(page).click()
        wait_error(page, f"{field} labels must be", quoted_shown(evil))
        assert_inert(page)
    still_works(page, session)


def set_labels(page, session, box, widget, text: str) -> None:
    box.fill(text)
    box.press("Tab")  # the field sends its value when it loses focus
    wait_for(lambda: on_server(session, lambda: widget.value) == text, 10, "the labels to arrive")


# --- hipviz serve itself: the policy, and a normal session under it ------------


def test_a_normal_session_keeps_to_the_policy(watched, hipviz_serve):
    """Load, move, cut, change view, mode and display: the view draws, no violation."""
    import numpy as np
    from test_app import checkbox, png_pixels, slider_handle

    page = watched
    response = page.goto(hipviz_serve + "?case=dysplastic&procedure=pao")
    policy = response.headers.get("content-security-policy", "")
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, policy
    assert response.headers.get("x-content-type-options") == "nosniff"
    page.wait_for_function(FIRST_PICTURE, timeout=60_000)

    before = value_text(page, "lcea_deg")
    handle = slider_handle(page, "Lateral turn")
    handle.focus()
    for _ in range(6):
        page.keyboard.press("ArrowRight")
    wait_for(lambda: "→" in value_text(page, "lcea_deg"), 30, "the LCEA to change")
    assert value_text(page, "lcea_deg").startswith(before)
    page.get_by_text("Cut adjustments", exact=True).click()
    handle = slider_handle(page, "Iliac cut offset")
    handle.focus()
    page.keyboard.press("ArrowRight")  # a new cut: new pieces sent as binary
    page.get_by_role("button", name="Side", exact=True).click()
    checkbox(page, "Screws/plate").check()
    page.get_by_role("button", name="Learn", exact=True).click()
    page.wait_for_timeout(1500)

    img = png_pixels(page.locator(".hipviz-scene").screenshot())
    drawn = img.min(axis=2) < 250  # not the white background
    assert drawn.mean() > 0.05, f"only {drawn.mean():.1%} of the view is drawn"
    assert np.unique(img.reshape(-1, 3), axis=0).shape[0] > 50  # shaded bone, not a flat fill
    assert_inert(page)
    errors = [m for m in page.seen["console"] if m.startswith("error")]
    assert errors == [], errors


def test_long_links_give_a_working_page_and_one_short_line(watched, hipviz_serve):
    """2000 unknown names and a 20 kB value: the page works; the line counts and clamps."""
    from hipviz.app.main import CASE_LABELS

    page = watched
    query = "&".join(f"k{i}=1" for i in range(2000))
    query += "&case=dysplastic&tilt=" + "9" * 20_000 + "&side=" + "<b>bold</b>" * 500
    page.goto(f"{hipviz_serve}?{query}")
    page.wait_for_function(FIRST_PICTURE, timeout=60_000)
    text = wait_error(page, "2000 unknown link parameters ignored ('k0', 'k1', 'k2', …)")
    assert f"link parameter tilt={quoted_shown('9' * 20_000)} ignored" in text
    assert f"link parameter side={quoted_shown('<b>bold</b>' * 2000)} ignored" in text
    assert len(text) < 400, len(text)
    assert case_select(page).input_value() == CASE_LABELS["dysplastic"]  # the rest applied
    wait_for(lambda: value_text(page, "lcea_deg").endswith("°"), 30, "the measures")
    assert_inert(page)
