"""How the first of ``hipviz serve --num-procs`` processes routes a connection, from its head."""

from __future__ import annotations

import pytest

pytest.importorskip("bokeh")

from bokeh.util.token import generate_jwt_token  # noqa: E402

from hipviz.app.procs import PROCESS_KEY, head_complete, route  # noqa: E402

SECRET = "a-secret-of-at-least-thirty-two-bytes-0123456789"


def token(**payload) -> str:
    return generate_jwt_token("a-session-id", secret_key=SECRET, signed=True, extra_payload=payload)


def websocket_head(protocol: str) -> bytes:
    return (
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:5006\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("index", [0, 1, 3])
def test_a_websocket_goes_to_the_process_its_token_names(index):
    assert route(websocket_head(f"bokeh, {token(**{PROCESS_KEY: index})}"), 4) == index


def test_the_header_name_is_not_case_sensitive():
    head = websocket_head(f"bokeh, {token(**{PROCESS_KEY: 2})}").replace(
        b"Sec-WebSocket-Protocol", b"sec-websocket-protocol"
    )
    assert route(head, 3) == 2


@pytest.mark.parametrize(
    "head",
    [
        b"GET /?case=cam HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # a page: any process
        websocket_head(f"bokeh, {token()}"),  # a token naming no process
        websocket_head(f"bokeh, {token(**{PROCESS_KEY: 7})}"),  # no such process
        websocket_head(f"bokeh, {token(**{PROCESS_KEY: True})}"),  # not an index
        websocket_head(f"bokeh, {token(**{PROCESS_KEY: '1'})}"),
        websocket_head("bokeh, not-a-token"),
        websocket_head("bokeh"),
        websocket_head(f"chat, {token(**{PROCESS_KEY: 1})}"),
        b"\xff\xfe garbage \r\n\r\n",
        b"",
    ],
    ids=[
        "page",
        "no-index",
        "out-of-range",
        "bool",
        "string",
        "bad-token",
        "no-token",
        "other-protocol",
        "garbage",
        "empty",
    ],
)
def test_anything_else_goes_to_any_process(head):
    assert route(head, 4) is None


def test_a_head_is_complete_at_its_blank_line_or_at_the_cap():
    assert head_complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not head_complete(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert head_complete(b"x" * 65_536)
