"""The hipviz web app (Panel). The library never imports this package.

``hipviz.app.HipApp(plan)`` is the whole page, for a notebook cell as for
``hipviz serve``; it is imported on first use, so the app's model
(:mod:`hipviz.app.state`) can be imported without Panel.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "HipApp":
        from .main import HipApp

        return HipApp
    raise AttributeError(f"module 'hipviz.app' has no attribute {name!r}")
