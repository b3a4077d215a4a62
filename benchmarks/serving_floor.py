"""The HTTP floor of benchmarks/serving.py: a bare ASGI app that reads the request body and
answers a constant JSON, on every path and method. Served by uvicorn with one worker:

    python -m uvicorn serving_floor:app --app-dir benchmarks --workers 1 --port 8000

No framework, no parsing, no model: what a request costs uvicorn and the loopback alone.
"""

from __future__ import annotations

from typing import Any

BODY = b'{"predictions":[{"score":0.5,"label":false}]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the whole body, as a real server must
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
