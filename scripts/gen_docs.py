"""Regenerate docs/measures.md from hipviz.reference (run after changing a measure)."""

from pathlib import Path

from hipviz.reference import markdown

if __name__ == "__main__":
    path = Path(__file__).resolve().parents[1] / "docs" / "measures.md"
    path.write_text(markdown(), encoding="utf-8")
    print(f"wrote {path}")
