"""Runs the pipeline locally (LocalDagRunner, SQLite ML Metadata, Beam DirectRunner) and reads back
what the run did from ML Metadata.

    imp-tfx pipeline run --data DIR --root DIR          (or: python -m pipeline.local_runner ...)

`run_and_summarize` returns a `RunSummary`: per component, whether it ran or was reused from the cache
and the URIs of its outputs, plus the blessing and the pushed version.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import sys
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from tfx import v1 as tfx

from pipeline import pipeline as pipeline_lib
from pipeline.configs import PipelineConfig

Progress = Callable[[str], None]

COMPLETE = "COMPLETE"
CACHED = "CACHED"
_COMPONENT_EVENT = re.compile(r"^Component (\S+) is (running|finished)\.$")


@dataclasses.dataclass(frozen=True)
class ComponentRun:
    """The latest execution of one pipeline node."""

    component: str
    state: str  # "COMPLETE", "CACHED", "FAILED", ...
    execution_id: int
    outputs: Dict[str, Tuple[str, ...]]  # output key -> artifact URIs
    output_properties: Dict[str, Tuple[Dict[str, object], ...]]  # output key -> custom properties


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """What the latest run of a pipeline did, read from ML Metadata."""

    pipeline_name: str
    components: Dict[str, ComponentRun]
    seconds: float = 0.0

    def output(self, component: str, key: str) -> str:
        """The single URI of a component output."""
        uris = self.components[component].outputs.get(key, ())
        if len(uris) != 1:
            raise KeyError(f"{component}.{key} has {len(uris)} artifacts")
        return uris[0]

    def output_property(self, component: str, key: str, name: str):
        props = self.components[component].output_properties.get(key, ())
        return props[0].get(name) if props else None

    @property
    def blessed(self) -> bool:
        return self.output_property("ImpEvaluator", "blessing", "blessed") == 1

    @property
    def pushed(self) -> bool:
        return self.output_property("Pusher", "pushed_model", "pushed") == 1

    @property
    def pushed_destination(self) -> Optional[str]:
        return self.output_property("Pusher", "pushed_model", "pushed_destination") if self.pushed else None

    @property
    def pushed_version(self) -> Optional[str]:
        return self.output_property("Pusher", "pushed_model", "pushed_version") if self.pushed else None

    def states(self) -> Dict[str, str]:
        return {name: run.state for name, run in self.components.items()}

    def describe(self) -> str:
        lines = [f"pipeline {self.pipeline_name}" + (f" ({self.seconds:.0f} s)" if self.seconds else "")]
        for name, run in self.components.items():
            lines.append(f"  {name:<34} {run.state}")
        lines.append(f"  blessed: {self.blessed}; pushed: "
                     + (f"version {self.pushed_version} -> {self.pushed_destination}" if self.pushed else "no"))
        return "\n".join(lines)


def _value(value) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def read_summary(config: PipelineConfig) -> RunSummary:
    """The latest execution of every node of `config`'s pipeline, from its SQLite MLMD."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    store = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_file))
    states = {v: k for k, v in metadata_store_pb2.Execution.State.items()}
    components: Dict[str, ComponentRun] = {}
    prefix = f"{config.name}."
    nodes = [c for c in store.get_contexts_by_type("node") if c.name.startswith(prefix)]
    for context in sorted(nodes, key=lambda c: c.id):
        executions = store.get_executions_by_context(context.id)
        if not executions:
            continue
        latest = max(executions, key=lambda e: e.id)
        events = [e for e in store.get_events_by_execution_ids([latest.id])
                  if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
        artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
        outputs: Dict[str, List[str]] = {}
        props: Dict[str, List[Dict[str, object]]] = {}
        for event in sorted(events, key=lambda e: e.artifact_id):
            key = event.path.steps[0].key if event.path.steps else ""
            artifact = artifacts[event.artifact_id]
            outputs.setdefault(key, []).append(artifact.uri)
            props.setdefault(key, []).append(
                {name: _value(v) for name, v in artifact.custom_properties.items()})
        name = context.name[len(prefix):]
        components[name] = ComponentRun(
            component=name, state=states.get(latest.last_known_state, str(latest.last_known_state)),
            execution_id=latest.id, outputs={k: tuple(v) for k, v in outputs.items()},
            output_properties={k: tuple(v) for k, v in props.items()})
    return RunSummary(pipeline_name=config.name, components=components)


class _ComponentProgress(logging.Handler):
    """Turns LocalDagRunner's "Component X is running/finished." log lines into progress messages."""

    def __init__(self, progress: Progress):
        super().__init__(level=logging.INFO)
        self._progress = progress
        self._started: Dict[str, float] = {}
        self._t0 = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        match = _COMPONENT_EVENT.match(record.getMessage())
        if not match:
            return
        component, event = match.groups()
        now = time.monotonic()
        if event == "running":
            self._started[component] = now
            self._progress(f"[pipeline {now - self._t0:6.0f}s] {component} ...")
        else:
            took = now - self._started.get(component, now)
            self._progress(f"[pipeline {now - self._t0:6.0f}s] {component} done ({took:.0f} s)")


@contextlib.contextmanager
def report_progress(progress: Optional[Progress]) -> Iterator[None]:
    """While active, component start/finish lines go to `progress`; of the other absl records (TFX and
    Beam log every split and file at INFO) only warnings and errors reach stderr."""
    if progress is None:
        yield
        return
    from absl import logging as absl_logging

    absl_logger = logging.getLogger("absl")
    handlers = [_ComponentProgress(progress), logging.StreamHandler(sys.stderr)]
    handlers[1].setLevel(logging.WARNING)
    old_verbosity, old_propagate = absl_logging.get_verbosity(), absl_logger.propagate
    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logger.propagate = False  # not to root / absl handlers that print INFO
    for handler in handlers:
        absl_logger.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            absl_logger.removeHandler(handler)
        absl_logger.propagate = old_propagate
        absl_logging.set_verbosity(old_verbosity)


def run(config: PipelineConfig, warm_start: bool = False) -> None:
    """Runs every component whose inputs changed (the rest are reused from the cache)."""
    tfx.orchestration.LocalDagRunner().run(
        pipeline_lib.create_pipeline(config, runner=pipeline_lib.LOCAL, warm_start=warm_start))


def run_and_summarize(config: PipelineConfig, warm_start: bool = False,
                      progress: Optional[Progress] = None) -> RunSummary:
    """`run`, reporting component progress, then `read_summary`."""
    start = time.monotonic()
    with report_progress(progress):
        run(config, warm_start=warm_start)
    return dataclasses.replace(read_summary(config), seconds=time.monotonic() - start)


def main(argv: Optional[list] = None) -> int:
    from imp_tfx import cli

    return cli.main(["pipeline", "run", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
