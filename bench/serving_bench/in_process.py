"""Our ASGI app called in-process (no socket, no uvicorn), with the functions of the request path timed in place."""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from serving_bench import BATCH_SIZES
from serving_bench.model import Trained

#: Functions of the request path timed inside the in-process app: (module, attribute, label). A method is
#: "Class.method". Each is wrapped at run time in this process only (the source is untouched) and restored after.
APP_PARTS = (
    ("mlops.serving.inputs", "InputSchema.parse", "`InputSchema.parse`: JSON decode, checks, arrays"),
    (
        "mlops.serving.batcher",
        "MicroBatcher.predict",
        "`MicroBatcher.predict`, awaited: queue, score, hand-offs",
    ),
    ("mlops.serving.batcher", "_score", "of which `_score`: DataFrame, `model.predict`, `tolist`"),
    ("mlops.serving.server", "ModelServer.log_rows", "`ModelServer.log_rows`: rows into the inference log"),
    ("mlops.serving.api", "json_response", "`json_response`: the answer"),
)
WHOLE = "the whole app, in-process"
REST = "the rest: FastAPI/Starlette routing and parameters, metrics middleware, request id, event loop"


@contextlib.contextmanager
def timed_parts(record: Callable[[str, float], None]) -> Iterator[list[str]]:
    """Wrap the functions of ``APP_PARTS`` so that each call reports its duration; yields the labels wrapped."""
    import functools
    import importlib
    import inspect

    restore = []
    wrapped = []
    for module_name, attribute, label in APP_PARTS:
        owner: Any = importlib.import_module(module_name)
        name = attribute
        if "." in attribute:
            class_name, name = attribute.split(".", 1)
            owner = getattr(owner, class_name, None)
        original = getattr(owner, name, None) if owner is not None else None
        if original is None:
            continue  # the code changed: that part is reported as not measured

        if inspect.iscoroutinefunction(original):

            async def wrapper(*args: Any, _f: Any = original, _l: str = label, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await _f(*args, **kwargs)
                finally:
                    record(_l, time.perf_counter() - started)

        else:

            def wrapper(*args: Any, _f: Any = original, _l: str = label, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return _f(*args, **kwargs)
                finally:
                    record(_l, time.perf_counter() - started)

        setattr(owner, name, functools.wraps(original)(wrapper))
        restore.append((owner, name, original))
        wrapped.append(label)
    try:
        yield wrapped
    finally:
        for owner, name, original in reversed(restore):
            setattr(owner, name, original)


def asgi_timings(trained: Trained, calls: int) -> dict[int, dict[str, float]]:
    """Median seconds of one ``POST /predict`` through our ASGI app called directly (no socket, no uvicorn),
    and of the parts of it (``APP_PARTS``) and the rest, per batch size.

    The app is built as ``mlops serve`` builds it (with its inference log, in the temporary home) and runs on
    the event loop uvicorn uses; only the alias polling is off. One request at a time, so the micro-batcher
    sees one request per batch.
    """
    import asyncio

    from mlops.serving.app import create_app
    from mlops.serving.inference_log import InferenceLog

    config = trained.config
    inference_log = InferenceLog.from_config(config)
    app = create_app(config, inference_log=inference_log, start_polling=False)
    server = app.state.server
    server.holder.refresh()
    server.holder.wait(120)
    if server.holder.champion is None:
        raise RuntimeError(f"the in-process app loaded no champion: {server.not_ready_reason()}")

    async def call(body: bytes) -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/predict",
            "raw_path": b"/predict",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status = 0

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.sleep(3600)  # the client never disconnects
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    timings: dict[str, list[float]] = {}

    def record(label: str, seconds: float) -> None:
        timings.setdefault(label, []).append(seconds)

    async def measure() -> dict[int, dict[str, float]]:
        result = {}
        with timed_parts(record) as wrapped:
            for rows in BATCH_SIZES:
                body = json.dumps({"records": trained.records[:rows]}).encode()
                for _ in range(50):
                    if (status := await call(body)) != 200:
                        raise RuntimeError(f"the in-process app answered {status} to {rows} rows")
                timings.clear()
                for _ in range(calls):
                    started = time.perf_counter()
                    await call(body)
                    record(WHOLE, time.perf_counter() - started)
                medians = {label: statistics.median(values) for label, values in timings.items()}
                # The rest, request by request (each part runs once per request here), then its median.
                outer = [label for label in wrapped if not label.startswith("of which")]
                if all(len(timings.get(label, [])) == calls for label in [*outer, WHOLE]):
                    rest = [
                        timings[WHOLE][i] - sum(timings[label][i] for label in outer) for i in range(calls)
                    ]
                    medians[REST] = statistics.median(rest)
                result[rows] = medians
        await server.close()
        return result

    try:  # the event loop uvicorn runs ours on ("auto" picks uvloop when it is installed)
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(measure())
