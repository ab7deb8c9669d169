"""The model server process: one ModelManager behind TF Serving's gRPC and REST front ends.

    server = ModelServer(ServerOptions(models=[ModelConfig("imp", "/models/imp")], rest_port=8501))
    server.start()   # loads the newest version(s), starts polling, binds both ports
    ...
    server.stop()

`serve(options)` does the same until SIGINT/SIGTERM (the `imp-tfx serve` command).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import signal
import threading
from typing import Optional, Sequence

from aiohttp import web

from serving.server import grpc_service, rest
from serving.server.model_manager import ModelConfig, ModelManager

log = logging.getLogger(__name__)

DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Attributes:
      models: models to serve.
      host: interface both front ends bind (loopback unless told otherwise).
      rest_port / grpc_port: 0 disables that front end.
      poll_seconds: file-system poll period for new versions (0 = load once, never poll).
      max_request_bytes: larger REST bodies get 413, larger gRPC messages RESOURCE_EXHAUSTED.
      num_threads: worker threads for TensorFlow calls (per front end).
    """

    models: Sequence[ModelConfig]
    host: str = "127.0.0.1"
    rest_port: int = 8501
    grpc_port: int = 8500
    poll_seconds: float = 2.0
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    num_threads: int = 16


class ModelServer:
    """Runs the manager, the gRPC server and the aiohttp REST server (on its own event-loop thread)."""

    def __init__(self, options: ServerOptions):
        self.options = options
        self.manager = ModelManager(options.models, poll_seconds=options.poll_seconds)
        self._grpc = None
        self._rest_thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Optional[web.AppRunner] = None
        self._executor = concurrent.futures.ThreadPoolExecutor(options.num_threads, thread_name_prefix="rest")

    def start(self) -> None:
        opts = self.options
        self.manager.start()
        if opts.grpc_port:
            self._grpc = grpc_service.create_server(self.manager, f"{opts.host}:{opts.grpc_port}",
                                                    opts.num_threads, opts.max_request_bytes)
            self._grpc.start()
            log.info("Running gRPC ModelServer at %s:%d ...", opts.host, opts.grpc_port)
        if opts.rest_port:
            ready = threading.Event()
            failure = []
            self._rest_thread = threading.Thread(target=self._run_rest, args=(ready, failure),
                                                 name="rest-loop", daemon=True)
            self._rest_thread.start()
            ready.wait()
            if failure:
                self.stop()
                raise failure[0]
            log.info("Exporting HTTP/REST API at:%s:%d ...", opts.host, opts.rest_port)

    def _run_rest(self, ready: threading.Event, failure: list) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        api = rest.RestApi(self.manager, self._executor, self.options.max_request_bytes)
        try:
            self._runner = web.AppRunner(api.app(), access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.options.host, self.options.rest_port)
            loop.run_until_complete(site.start())
        except Exception as e:  # e.g. the port is taken: report to start()
            failure.append(e)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._rest_thread is not None:
            self._rest_thread.join(timeout=10)
        if self._grpc is not None:
            self._grpc.stop(grace=5).wait()
        self.manager.stop()
        self._executor.shutdown(wait=True)


def serve(options: ServerOptions) -> int:
    """Serves until SIGINT or SIGTERM; returns the process exit code."""
    server = ModelServer(options)
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):  # a timed wait keeps the main thread responsive to signals
        pass
    log.info("Shutting down the model server")
    server.stop()
    return 0
