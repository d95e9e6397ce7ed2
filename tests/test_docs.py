"""Docs and packaging stay in step with the code."""

import re
import tomllib
from pathlib import Path

import pytest

from hipviz.reference import MEASURES, markdown

ROOT = Path(__file__).resolve().parents[1]


def test_measure_reference_is_generated_from_code():
    committed = (ROOT / "docs" / "measures.md").read_text(encoding="utf-8")
    assert committed == markdown(), "run: python scripts/gen_docs.py"


def test_every_band_set_is_contiguous():
    for m in MEASURES:
        for a, b in zip(m.bands[:-1], m.bands[1:], strict=True):
            assert a.high == b.low, m.key
        if m.bands:
            assert m.bands[0].low == -float("inf") and m.bands[-1].high == float("inf"), m.key
            assert any(b.level == "normal" for b in m.bands), m.key


def _name(req: str) -> tuple[str, str]:
    name, bound = re.match(r"([A-Za-z0-9_.\-]+)\s*>=\s*([0-9.]+)", req).groups()
    return name.lower().replace("_", "-"), bound


def test_environment_yml_mirrors_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in deps["optional-dependencies"].values() for r in group]
    wanted = dict(_name(r) for r in deps["dependencies"] + extras)
    env = (ROOT / "environment.yml").read_text()
    found = dict(_name(m) for m in re.findall(r"-\s+([A-Za-z0-9_.\-]+\s*>=\s*[0-9.]+)", env))
    found.pop("python", None)
    assert found == wanted


@pytest.mark.parametrize(
    "command", ['pip install -e ".[test]" && hipviz serve', "python -m pytest"]
)
def test_readme_gives_the_two_commands(command):
    assert command in (ROOT / "README.md").read_text(encoding="utf-8")


def test_ci_runs_the_readme_test_command():
    assert "\npython -m pytest\n" in (ROOT / ".ci" / "run").read_text()


def test_cli_reference_lists_every_option():
    """docs/cli.md names every command and every option of the parser."""
    import argparse

    from hipviz.cli import build_parser

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for command, parser in sub.choices.items():
        start = text.find(f"## `hipviz {command}`")
        if start < 0:
            missing.append(f"hipviz {command}")
            continue
        end = text.find("\n## ", start + 1)
        section = text[start : end if end > 0 else len(text)]
        for action in parser._actions:
            for option in action.option_strings:
                named = re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", section)
                if option.startswith("--") and option != "--help" and not named:
                    missing.append(f"hipviz {command} {option}")
    assert not missing, f"not in docs/cli.md: {missing}"
