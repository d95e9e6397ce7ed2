"""hipviz: see and measure hip bones, and simulate hip osteotomies.

The library works on plain :class:`trimesh.Trimesh` meshes in millimetres.
Modules load lazily, so ``import hipviz`` stays cheap:

* :mod:`hipviz.io` - read meshes and label maps, detect units;
* :mod:`hipviz.atlas` - the built-in LLP26 anatomy and its shape modes;
* :mod:`hipviz.landmarks`, :mod:`hipviz.frames` - landmarks and frames;
* :mod:`hipviz.measures` - every measure as a pure function;
* :mod:`hipviz.hip` - :func:`hipviz.hip.analyze`, all of it in one call;
* :mod:`hipviz.cases` - teaching cases made from the built-in hip;
* :mod:`hipviz.osteotomy`, :mod:`hipviz.simulate` - cut, move and re-measure;
* :mod:`hipviz.fixation` - screws and plates to show after a cut;
* :mod:`hipviz.contact` - cartilage contact pressure (discrete element analysis);
* :mod:`hipviz.loads` - the joint load: OrthoLoad cases and Pauwels' stance;
* :mod:`hipviz.reference` - meanings, normal bands and sources;
* :mod:`hipviz.batch` - cohorts: many hips on Dask into one table.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "atlas",
    "batch",
    "cases",
    "contact",
    "datasets",
    "errors",
    "explain",
    "fixation",
    "frames",
    "geometry",
    "hip",
    "io",
    "landmarks",
    "loads",
    "measures",
    "osteotomy",
    "raycast",
    "reference",
    "render",
    "simulate",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return import_module(f"{__name__}.{name}")
    if name == "analyze":
        return import_module(f"{__name__}.hip").analyze
    msg = f"module 'hipviz' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted([*_SUBMODULES, "analyze", "__version__"])
