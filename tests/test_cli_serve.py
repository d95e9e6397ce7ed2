"""``hipviz serve``'s options reach the server; bad ones get one line and exit 2."""

from __future__ import annotations

import pytest

pytest.importorskip("panel")

from hipviz import cli  # noqa: E402


@pytest.fixture
def served(monkeypatch):
    """Capture what ``hipviz serve`` would start, without starting it."""
    import hipviz.app.main

    calls = []

    def fake_serve(**kwargs):
        calls.append(kwargs)
        # As the real one: the address is told once the port is bound.
        prefix = kwargs["prefix"]
        path = f"/{prefix}/" if prefix else "/"
        kwargs["on_ready"](f"http://{kwargs['address']}:{kwargs['port']}{path}")
        return 0

    monkeypatch.setattr(hipviz.app.main, "serve", fake_serve)
    return calls


def test_proxy_and_process_options_reach_the_server(served, capsys):
    argv = [
        "serve",
        "--port",
        "8080",
        "--num-procs",
        "2",
        "--prefix",
        "/hipviz/",
        "--allow-websocket-origin",
        "hip.example.org",
        "--allow-websocket-origin",
        "hip.example.org:8443",
    ]
    assert cli.main(argv) == 0
    (kwargs,) = served
    assert kwargs["num_procs"] == 2 and kwargs["port"] == 8080
    assert kwargs["prefix"] == "hipviz"
    assert kwargs["allow_websocket_origin"] == ["hip.example.org", "hip.example.org:8443"]
    assert "http://127.0.0.1:8080/hipviz/" in capsys.readouterr().err


def test_defaults_serve_one_process_at_the_root(served, capsys):
    assert cli.main(["serve"]) == 0
    (kwargs,) = served
    assert kwargs["num_procs"] == 1 and kwargs["prefix"] == ""
    assert kwargs["allow_websocket_origin"] == []
    assert "http://127.0.0.1:5006/ " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["serve", "--num-procs", "-1"], "--num-procs -1"),
        (["serve", "--show", "--num-procs", "2"], "--show"),
    ],
)
def test_bad_process_options_get_one_line(served, capsys, argv, words):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and "Traceback" not in err
    assert served == [], "the server started anyway"
