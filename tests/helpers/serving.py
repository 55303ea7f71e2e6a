"""The inference app in the tests' hands: in-process through httpx over ASGI (no sockets), or under
uvicorn in a background thread on a socket of its own."""

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from headliner.model.onnx_packaging import OnnxPredictor
from headliner.serving.app import InferenceApp
from headliner.serving.inference_log import InferenceLog
from headliner.serving.server import ModelServer
from tests.helpers.ports import bound_socket


class Client:
    """Synchronous requests to an ASGI app through httpx, on one event loop."""

    def __init__(self, app):
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, path, **kwargs))

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


class Served:
    """A ModelServer with an inference log on a SQLite file, behind the app, with a client."""

    def __init__(self, predictor: OnnxPredictor, tmp_path, **server_options):
        self.url = f"sqlite:///{tmp_path / 'inference.sqlite'}"
        self.log = InferenceLog(self.url, predictor.feature_names, flush_seconds=60)
        self.server = ModelServer(predictor, self.log, **server_options)
        self.app = InferenceApp(self.server)
        self.client = Client(self.app)
        self.closed = False

    def close(self) -> int:
        """Stop the client and close the log (rows not written to the database: the count spilled)."""
        if self.closed:
            return 0
        self.closed = True
        self.client.close()
        return self.log.close()


@contextmanager
def serving(app) -> Iterator[str]:
    """An ASGI app under uvicorn in a background thread, listening on a socket this process bound itself
    (no other server can hold its port); yields its URL."""
    import uvicorn

    sock = bound_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"
