"""Import hygiene: computing never pays for the renderer or the web stack."""

import os
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


def _blas_env_after_main(env_value: str | None) -> str:
    code = (
        "import os, sys\n"
        "from hipviz.cli import main\n"
        "assert 'numpy' not in sys.modules, 'numpy loaded before main: too late to pin BLAS'\n"
        "try:\n"
        "    main(['measure', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(os.environ.get('OPENBLAS_NUM_THREADS'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if env_value is not None:
        env["OPENBLAS_NUM_THREADS"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    return out.strip().splitlines()[-1]


def test_cli_pins_blas_to_one_thread_unless_the_user_chose():
    assert _blas_env_after_main(None) == "1"
    assert _blas_env_after_main("3") == "3"
