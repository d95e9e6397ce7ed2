"""Import hygiene: computing never pays for the renderer or the web stack."""

import subprocess
import sys


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return set(out.split())


def test_measures_imports_numpy_only():
    mods = loaded_after("import hipviz.measures")
    assert not {"pyvista", "panel", "vtk", "trimesh", "scipy"} & mods


def test_cli_measure_path_has_no_renderer():
    mods = loaded_after("import hipviz.cli, hipviz.hip, hipviz.io, hipviz.anatomy")
    assert not {"pyvista", "panel", "vtkmodules"} & mods


def test_library_never_imports_the_web_app():
    mods = loaded_after("import hipviz.render, hipviz.simulate, hipviz.explain, hipviz.cases")
    assert not {"panel", "param", "bokeh"} & mods
    assert "pyvista" in mods  # render is where pyvista lives


def test_handout_and_report_never_import_the_web_app():
    mods = loaded_after("import hipviz.handout, hipviz.report")
    assert not {"panel", "param", "bokeh", "hipviz.app"} & mods
    assert not {"pyvista", "weasyprint"} & mods  # loaded only when a file is made


def test_app_model_has_no_panel():
    mods = loaded_after("import hipviz.app.state")
    assert "param" in mods
    assert not {"panel", "bokeh"} & mods
