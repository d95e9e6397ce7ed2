"""Shared links and the served page: Plan.apply_query's limits, and hipviz serve's headers."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

import pytest

from hipviz.app.state import MAX_LINK_FIELDS, SHOWN_UNKNOWN, URL_PARAMS, Plan
from hipviz.app.text import ELLIPSIS, QUOTE_CHARS

ROOT = Path(__file__).resolve().parents[1]


# --- Plan.apply_query -------------------------------------------------------


def test_a_20_kb_value_gives_a_short_line():
    plan = Plan()
    problems = plan.apply_query("case=" + "x" * 20_000 + "&side=right")
    assert plan.side == "right" and plan.case == "normal"  # the rest applies
    assert len(problems) == 1
    assert len(problems[0]) < 200, len(problems[0])
    assert "'" + "x" * (QUOTE_CHARS - 1) + ELLIPSIS + "'" in problems[0]
    assert "case=" in problems[0] and "one of normal" in problems[0]


def test_a_20_kb_name_gives_a_short_line():
    problems = Plan().apply_query({"y" * 20_000: "1"})
    assert problems == [f"unknown link parameter {'y' * (QUOTE_CHARS - 1) + ELLIPSIS!r}"]


def test_2000_unknown_names_give_one_line_with_their_count():
    plan = Plan()
    query = "&".join(f"k{i}=1" for i in range(2000)) + "&case=dysplastic"
    start = time.perf_counter()
    problems = plan.apply_query(query)
    took = time.perf_counter() - start
    assert plan.case == "dysplastic"
    assert problems == ["2000 unknown link parameters ignored ('k0', 'k1', 'k2', …)"]
    assert took < 0.5, f"{took:.2f} s for 2000 fields"


def test_a_few_unknown_names_are_each_named():
    problems = Plan().apply_query("a=1&b=2&a=3")
    assert problems == ["unknown link parameter 'a'", "unknown link parameter 'b'"]
    many = Plan().apply_query("&".join(f"n{i}=1" for i in range(SHOWN_UNKNOWN + 1)))
    assert many == [f"{SHOWN_UNKNOWN + 1} unknown link parameters ignored ('n0', 'n1', 'n2', …)"]


def test_fields_after_the_cap_are_counted_not_read():
    extra = 7
    names = [f"k{i}" for i in range(MAX_LINK_FIELDS - 1)]
    query = "&".join(names) + "&case=cam" + "&side=right" * extra
    plan = Plan()
    problems = plan.apply_query(query)
    assert plan.case == "cam" and plan.side == "left"  # side came after the cap
    assert problems[-1] == (
        f"{extra} more link parameters not read (a link is read up to its first {MAX_LINK_FIELDS})"
    )
    assert problems[0].startswith(f"{MAX_LINK_FIELDS - 1} unknown link parameters ignored")
    # the same cap for fields given already split
    fields = [(f"k{i}", "1") for i in range(MAX_LINK_FIELDS)] + [("case", "cam")] * extra
    assert Plan().apply_query(fields)[-1].startswith(f"{extra} more link parameters not read")


def test_a_repeated_name_reads_its_first_value_and_says_so():
    plan = Plan()
    problems = plan.apply_query("case=dysplastic&pao_lateral=5&case=normal&case=cam")
    assert (plan.case, plan.pao_lateral) == ("dysplastic", 5.0)
    assert problems == ["link parameter case given 3 times: only the first is read"]
    # a bad first value is reported and the later ones are still not read
    plan = Plan()
    problems = plan.apply_query([("tilt", "abc"), ("tilt", "5")])
    assert plan.tilt == 0.0
    assert problems == [
        "link parameter tilt='abc' ignored: a number from -30 to 30",
        "link parameter tilt given 2 times: only the first is read",
    ]


def test_query_text_is_decoded_and_empty_values_reported():
    plan = Plan()
    problems = plan.apply_query("?case=dysplastic&procedure=pao&pao_lateral=1%2E5&&side=")
    assert (plan.case, plan.procedure, plan.pao_lateral) == ("dysplastic", "pao", 1.5)
    assert problems == ["link parameter side='' ignored: one of left, right"]
    plan = Plan()
    assert plan.apply_query("case=%3Cscript%3E+x") == [
        "link parameter case='<script> x' ignored: one of "
        "normal, dysplastic, borderline, retroverted, valga-antetorsion, cam, builtin, upload"
    ]
    assert plan.query() == {}


def test_huge_numbers_in_a_link_are_reported():
    plan = Plan()
    problems = plan.apply_query("tilt=" + "9" * 20_000 + "&pao_lateral=1e400")
    assert plan.tilt == 0.0 and plan.pao_lateral == 0.0
    assert len(problems) == 2 and all(len(p) < 150 for p in problems), problems


# --- hipviz serve: headers and long links -----------------------------------

REQUIRED_CSP = (
    "default-src 'self'",
    "frame-src 'none'",
    "frame-ancestors 'none'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
)


def test_policy_names_only_a_plain_host():
    from hipviz.app.web import content_security_policy

    policy = content_security_policy("127.0.0.1:5006")
    directives = [d.strip() for d in policy.split(";")]
    for required in REQUIRED_CSP:
        assert required in directives, required
    assert "connect-src 'self' blob: ws://127.0.0.1:5006 wss://127.0.0.1:5006" in directives
    assert not re.search(r"https?:|\*", policy), "no other host may be allowed"
    for host in ("evil.com; script-src *", "a b", "x'y", "[::1]:80 *"):
        assert content_security_policy(host) == content_security_policy(None), host
    assert "ws://[::1]:5006" in content_security_policy("[::1]:5006")


@pytest.fixture(scope="module")
def plain_page(hipviz_serve):
    """Status, headers and text of the served page without a query."""
    return get(hipviz_serve)


def get(url: str) -> tuple[int, dict[str, str], str]:
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.status, dict(r.headers), r.read().decode(errors="replace")


def test_served_page_and_its_scripts_carry_the_policy(hipviz_serve, plain_page):
    status, headers, page = plain_page
    assert status == 200
    policy = headers.get("Content-Security-Policy", "")
    for required in REQUIRED_CSP:
        assert required in policy, (required, policy)
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("Referrer-Policy") == "no-referrer"
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', page)
    assert scripts, "the page loads no script?"
    assert not [s for s in scripts if re.match(r"(https?:)?//", s)], scripts  # no other host
    status, headers, _ = get(urljoin(hipviz_serve, scripts[0]))
    assert status == 200 and "default-src 'self'" in headers.get("Content-Security-Policy", "")
    assert headers.get("X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize("fields", [2000, 6000])
def test_a_long_link_still_serves_a_page(hipviz_serve, plain_page, fields):
    """Tornado alone refuses more than 1000 fields; the query stays out of the session token."""
    plain = plain_page[2]
    query = "&".join(f"k{i}=1" for i in range(fields))
    status, headers, page = get(f"{hipviz_serve}?{query}")
    assert status == 200 and "default-src 'self'" in headers["Content-Security-Policy"]
    # the page (its session token) does not grow with the link
    assert len(page) < len(plain) + 2000, (len(page), len(plain), len(query))


def test_every_url_parameter_still_applies():
    """The whole documented link still applies with the new reader."""
    plan = Plan(
        case="builtin", side="right", procedure="pao", pao_lateral=12.5, mode1=1.0, view="lateral"
    )
    again = Plan()
    assert again.apply_query(plan.url_query()) == []
    assert again.query() == plan.query()
    assert set(plan.query()) <= set(URL_PARAMS)


# --- links that mean what they say (implied procedure, conflicts) -----------


def test_fragment_moves_without_a_procedure_open_the_pao():
    plan = Plan()
    assert plan.apply_query("case=dysplastic&pao_lateral=20") == []
    assert (plan.case, plan.procedure, plan.pao_lateral) == ("dysplastic", "pao", 20.0)
    # the link it writes back names the procedure and reopens the same plan
    again = Plan()
    assert again.apply_query(plan.url_query()) == []
    assert again.query() == plan.query()


def test_no_fragment_move_implies_nothing():
    for query in ("case=dysplastic", "pao_lateral=0", "fem_varus=10", "cut_iliac=2"):
        plan = Plan()
        plan.apply_query(query)
        assert plan.procedure == "none", query


def test_a_named_procedure_is_never_overridden():
    plan = Plan()
    problems = plan.apply_query("procedure=triple&pao_lateral=20")
    assert (plan.procedure, problems) == ("triple", [])
    plan = Plan()
    problems = plan.apply_query("procedure=none&pao_lateral=20&pao_medial=3&fem_varus=10")
    assert plan.procedure == "none" and plan.fem_varus == 10.0
    assert problems == [
        "link parameters pao_lateral, pao_medial not applied: procedure=none (no pelvic "
        "osteotomy); choose a procedure to move the fragment"
    ]
    # an unreadable procedure is reported, and the moves it leaves without one too
    plan = Plan()
    problems = plan.apply_query("procedure=<b>x</b>&pao_lateral=20")
    assert plan.procedure == "none" and len(problems) == 2
    assert problems[0].startswith("link parameter procedure='<b>x</b>' ignored")
    assert "pao_lateral not applied" in problems[1]


def test_a_page_with_moves_and_no_osteotomy_writes_a_link_that_says_so():
    plan = Plan(case="dysplastic", pao_lateral=20.0)  # set, then the procedure left at none
    assert plan.query()["procedure"] == "none"
    again = Plan()
    problems = again.apply_query(plan.url_query())
    assert again.procedure == "none" and again.query() == plan.query()
    assert len(problems) == 1 and "pao_lateral not applied" in problems[0]


@pytest.mark.parametrize(
    ("query", "ignored"),
    [
        ("procedure=salter&cut_retro=2&cut_iliac=1", "cut_retro"),
        ("procedure=pao&cut_sphere=3&cut_pubic_tilt=5", "cut_sphere"),
        ("procedure=rao&cut_ischial_tilt=5&cut_sphere=3", "cut_ischial_tilt"),
        ("cut_iliac=2", "cut_iliac"),
    ],
)
def test_cut_adjustments_the_procedure_has_no_cut_for_are_reported(query, ignored):
    plan = Plan()
    problems = plan.apply_query(query)
    assert len(problems) == 1, problems
    assert problems[0] == (
        f"link parameters {ignored} not applied: procedure={plan.procedure} has no such cut"
    )
    assert getattr(plan, ignored) != 0.0  # kept: choosing a procedure that has it applies it
