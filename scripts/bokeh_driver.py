"""A thin Bokeh-protocol client: many app sessions from one process, no browser.

Used by ``scripts/bench_concurrency.py`` to measure the server's own cost
without browsers eating the same cores. A :class:`ThinSession` does what a
page does on the wire and nothing else: it GETs the page (which creates the
server session and holds its token), opens the websocket, pulls the document,
tells the 3D view it is ready (so the server sends meshes and head colours as
it would to a browser), and then changes widget values with ``PATCH-DOC``
messages. Replies are not decoded beyond looking for a few attribute names
in their JSON text; binary buffers (meshes, colours) are read and dropped.

The wire format is Bokeh's (``bokeh/protocol``): each message is a header,
a metadata and a content websocket message (JSON text), then for each of
``header["num_buffers"]`` a buffer header (text) and its payload (binary).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import websocket_connect

#: What the page's websocket may receive at most (meshes of a big upload).
MAX_RECEIVE_BYTES = 1 << 30


def _walk(obj: Any):
    """Every serialized Bokeh model (``{"type": "object", "name", "id", "attributes"}``)."""
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            if o.get("type") == "object" and "id" in o:
                yield o
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)


def _map(values: dict[str, Any]) -> dict[str, Any]:
    """A dict as Bokeh serializes plain objects (keys such as "type" are then safe)."""
    return {"type": "map", "entries": [[k, v] for k, v in values.items()]}


def _esm_reply(content: str, kind: str, job: int) -> bool:
    """Whether a message's JSON text is a component's reply ``{"kind": kind, "id": job}``."""
    return "esm_event" in content and f'["kind","{kind}"]' in content and f'["id",{job}]' in content


class ThinSession:
    """One app session driven over Bokeh's websocket protocol.

    Parameters
    ----------
    base_url : str
        ``http://127.0.0.1:<port>/`` (with the server's ``--prefix``, if any).
    """

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/") + "/"
        self.ws = None
        self.models: dict[str, dict] = {}
        self._waiters: list[tuple[Callable[[str], bool], asyncio.Future]] = []
        self._reader: asyncio.Task | None = None
        self.received_bytes = 0
        #: Last value set, per slider id.
        self.values: dict[str, float] = {}
        self.closed = False
        #: Uploads: pieces' size (read from the page) and how many go unacknowledged.
        self.piece_bytes = 1 << 20
        self.pieces_in_flight = 2
        self._jobs = 0

    # ------------------------------------------------------------ connection

    async def open(self, query: str = "", *, ready: bool = True, timeout: float = 120) -> float:
        """Open the page at ``?query``; return seconds until its hip is drawn."""
        t0 = time.perf_counter()
        page = await AsyncHTTPClient().fetch(
            self.base_url + (f"?{query}" if query else ""), request_timeout=timeout
        )
        token = re.search(r'"token":"([^"]+)"', page.body.decode()).group(1)
        ws_url = self.base_url.replace("http://", "ws://") + "ws"
        self.ws = await websocket_connect(
            ws_url, subprotocols=["bokeh", token], max_message_size=MAX_RECEIVE_BYTES
        )
        # as browsers do: each of a message's parts goes out at once (without
        # this, Nagle's algorithm holds the second part for the first's ACK)
        self.ws.protocol.set_nodelay(True)
        await self._recv()  # ACK
        await self._send("PULL-DOC-REQ", {})
        header, content = await self._recv()
        while header.get("msgtype") != "PULL-DOC-REPLY":
            # as BokehJS does: a patch sent before the document is already in it
            header, content = await self._recv()
        for model in _walk(json.loads(content)):
            self.models[model["id"]] = model
        self._reader = asyncio.create_task(self._read_forever())
        drawn = self.wait_for(lambda c: '"attr":"matrices"' in c)
        # as Bokeh's client does once the page is built: Panel sends no
        # model changes to a session before this
        await self.event(None, "document_ready")
        if ready:
            await self.event(self.view_id, "data_event", data=_map({"type": "ready"}))
        if not self._drawn_in_document():  # else the hip was built before the pull
            await asyncio.wait_for(drawn, timeout)
        return time.perf_counter() - t0

    def _drawn_in_document(self) -> bool:
        for m in self.models.values():
            if m.get("name", "").startswith("SceneView"):
                return bool(m.get("attributes", {}).get("matrices", {}).get("entries"))
        return False

    async def close(self) -> None:
        self.closed = True
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            self.ws.close()

    # ------------------------------------------------------------ models

    def find(self, name_part: str, **attrs: Any) -> list[str]:
        """Ids of models whose type name contains ``name_part`` and whose attributes match."""
        return [
            m["id"]
            for m in self.models.values()
            if name_part in m.get("name", "")
            and all(m.get("attributes", {}).get(k) == v for k, v in attrs.items())
        ]

    def slider(self, title: str) -> str:
        (sid,) = self.find("Slider", title=title)
        return sid

    def error_shown(self, content: str) -> bool:
        """Whether a message's content sets the text of the page's error line."""
        ids = [
            m["id"]
            for m in self.models.values()
            if "alert-danger" in (m.get("attributes", {}).get("css_classes") or [])
        ]
        return any(f'"model":{{"id":"{i}"}},"attr":"text"' in content for i in ids)

    @property
    def view_id(self) -> str:
        """The ESM model of the 3D view (its ``data`` is a SceneView data model)."""
        for m in self.models.values():
            data = m.get("attributes", {}).get("data")
            if m.get("name", "").endswith("ReactiveESM") and isinstance(data, dict):
                if self.models.get(data.get("id"), data).get("name", "").startswith("SceneView"):
                    return m["id"]
        msg = "no 3D view in the document"
        raise LookupError(msg)

    # ------------------------------------------------------------ actions

    async def set(self, model_id: str, **attrs: Any) -> None:
        """Change attributes of one model, as the browser does (one PATCH-DOC)."""
        events = [
            {"kind": "ModelChanged", "model": {"id": model_id}, "attr": k, "new": v}
            for k, v in attrs.items()
        ]
        await self._send("PATCH-DOC", {"events": events})

    async def event(self, model_id: str | None, name: str, **values: Any) -> None:
        """Fire a Bokeh event: of a model (``button_click``, the 3D view's
        ``data_event``) or, with ``model_id=None``, of the document."""
        if model_id is not None:
            values = {"model": {"id": model_id}, **values}
        msg = {"type": "event", "name": name, "values": _map(values)}
        await self._send(
            "PATCH-DOC",
            {"events": [{"kind": "MessageSent", "msg_type": "bokeh_event", "msg_data": msg}]},
        )

    async def move(self, slider_id: str, value: float, timeout: float = 60) -> float:
        """Set a slider to a new value; return seconds until the server sends the new matrices."""
        if value == self.values.get(slider_id, 0.0):
            msg = f"the slider is at {value} already: no change, no reply"
            raise ValueError(msg)
        self.values[slider_id] = value
        reply = self.wait_for(lambda c: '"attr":"matrices"' in c)
        t0 = time.perf_counter()
        await self.set(slider_id, value=value)
        await asyncio.wait_for(reply, timeout)
        return time.perf_counter() - t0

    async def upload(self, files: dict[str, tuple[str, bytes]], *, whole: bool = False) -> None:
        """Choose files in the upload inputs (``{"Pelvis": (name, bytes), ...}``).

        As the page sends them: in binary pieces through the upload guard
        (:class:`hipviz.app.widgets.UploadGuard`), each acknowledged before
        the next but one goes; returns when every file has arrived whole.
        ``whole=True``: as Panel's file input would, each file as base64 text
        in one message (the way before pieces).
        """
        if whole:
            for title, (name, data) in files.items():
                (fid,) = self.find("FileInput", title=title)
                await self.set(
                    fid,
                    value=base64.b64encode(data).decode(),
                    mime_type="application/octet-stream",
                    filename=name,
                )
            return
        guard = self.guard_id()
        for title, (name, data) in files.items():
            self._jobs += 1
            job, role = self._jobs, title.lower()
            done = self.wait_for(lambda c, job=job: _esm_reply(c, "done", job))
            await self._data_event(
                guard, {"kind": "start", "id": job, "role": role, "name": name, "size": len(data)}
            )
            acks: list[asyncio.Future] = []
            offsets = range(0, len(data), self.piece_bytes)
            for i, offset in enumerate(offsets):
                if i >= self.pieces_in_flight:
                    await asyncio.wait_for(acks[i - self.pieces_in_flight], 60)
                acks.append(
                    self.wait_for(
                        lambda c, job=job, offset=offset: (
                            _esm_reply(c, "ack", job) and f'["offset",{offset}]' in c
                        )
                    )
                )
                piece = data[offset : offset + self.piece_bytes]
                await self._data_event(
                    guard, {"kind": "piece", "id": job, "offset": offset}, buffer=piece
                )
            await asyncio.gather(*(asyncio.wait_for(a, 60) for a in acks))
            await self._data_event(guard, {"kind": "end", "id": job})
            await asyncio.wait_for(done, 60)

    def guard_id(self) -> str:
        """The id of the page's upload guard (the component that takes files in pieces)."""
        for m in self.models.values():
            data = m.get("attributes", {}).get("data")
            if m.get("name", "").endswith("ReactiveESM") and isinstance(data, dict):
                data = self.models.get(data.get("id"), data)
                if data.get("name", "").startswith("UploadGuard"):
                    # a default is not sent: the page then uses hipviz's
                    self.piece_bytes = int(data.get("attributes", {}).get("piece_bytes", 1 << 20))
                    return m["id"]
        msg = "no upload guard in the document"
        raise LookupError(msg)

    async def _data_event(
        self, model_id: str, values: dict[str, Any], *, buffer: bytes | None = None
    ) -> None:
        """A component's ``send_msg(values)``; ``buffer``, if given, as ``values["data"]``,
        in a binary frame as BokehJS sends an ArrayBuffer."""
        buffers = []
        if buffer is not None:
            ref = uuid.uuid4().hex
            values = {**values, "data": {"type": "bytes", "data": {"id": ref}}}
            buffers.append((ref, buffer))
        msg = {
            "type": "event",
            "name": "data_event",
            "values": _map({"model": {"id": model_id}, "data": _map(values)}),
        }
        await self._send(
            "PATCH-DOC",
            {"events": [{"kind": "MessageSent", "msg_type": "bokeh_event", "msg_data": msg}]},
            buffers=buffers,
        )

    async def click(self, label: str) -> None:
        (bid,) = self.find("Button", label=label)
        await self.event(bid, "button_click")

    def wait_for(self, predicate: Callable[[str], bool]) -> asyncio.Future:
        """A future set when a message's JSON content satisfies ``predicate``."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, fut))
        return fut

    # ------------------------------------------------------------ wire

    async def _send(
        self, msgtype: str, content: dict, buffers: list[tuple[str, bytes]] = ()
    ) -> None:
        header = {"msgid": uuid.uuid4().hex, "msgtype": msgtype}
        if buffers:
            header["num_buffers"] = len(buffers)
        await self.ws.write_message(json.dumps(header))
        await self.ws.write_message("{}")
        await self.ws.write_message(json.dumps(content, separators=(",", ":")))
        for ref, payload in buffers:
            await self.ws.write_message(json.dumps({"id": ref}))
            await self.ws.write_message(payload, binary=True)

    async def _read(self) -> str | bytes:
        data = await self.ws.read_message()
        if data is None:
            raise ConnectionError("the server closed the websocket")
        self.received_bytes += len(data)
        return data

    async def _recv(self) -> tuple[dict, str]:
        header = json.loads(await self._read())
        await self._read()  # metadata
        content = await self._read()
        for _ in range(2 * header.get("num_buffers", 0)):  # buffer header, payload
            await self._read()
        return header, content

    async def _read_forever(self) -> None:
        try:
            while True:
                _, content = await self._recv()
                keep = []
                for predicate, fut in self._waiters:
                    if fut.done():
                        continue
                    if predicate(content):
                        fut.set_result(content)
                    else:
                        keep.append((predicate, fut))
                self._waiters = keep
        except (ConnectionError, asyncio.CancelledError) as exc:
            for _, fut in self._waiters:
                if not fut.done():
                    fut.set_exception(ConnectionError(str(exc) or "closed"))
            self._waiters = []
