"""Scheduled retraining: each round ingests the newest data span, warm-starts from the last blessed
model, evaluates against it and pushes only a model that is not worse.

New data arrives as a new span folder, `DATA/span-<N>/` (same manifests and media layout as any dataset).
One round is the normal pipeline with:

* `span_pattern="span-{SPAN}"`: MultimodalExampleGen's file-based driver resolves the latest span, so
  only the new data is ingested (and its span number is recorded on the Examples artifact);
* `warm_start=True`: the `latest_blessed_model_resolver` (LatestBlessedModelStrategy) feeds the
  Trainer's `base_model`, which run_fn restores before training;
* the same resolver gives ImpEvaluator its baseline: both models are scored on the new span's eval
  splits and the Pusher only pushes when the blessing says "not worse" (a new `<base>/<version>/`).

Locally: `imp-tfx retrain --data DATA --root ROOT` runs one round. On Vertex AI the retraining pipeline is
compiled once and run by a pipeline job schedule (`schedule_on_vertex`).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from typing import Optional

from pipeline import kubeflow_v2_runner
from pipeline import local_runner
from pipeline.configs import SPAN_PATTERN, PipelineConfig


@dataclasses.dataclass(frozen=True)
class RoundResult:
    """What one retraining round did."""

    span: Optional[int]
    warm_started_from: Optional[str]
    summary: local_runner.RunSummary

    @property
    def blessed(self) -> bool:
        return self.summary.blessed

    @property
    def pushed_version(self) -> Optional[str]:
        return self.summary.pushed_version

    def describe(self) -> str:
        start = f"warm start from {self.warm_started_from}" if self.warm_started_from else "cold start"
        return f"retraining round on span {self.span} ({start})\n{self.summary.describe()}"



def _examples_span(config: PipelineConfig, summary: local_runner.RunSummary) -> Optional[int]:
    """The span of the Examples artifact the run used (TFX 1.16 records it as a custom property;
    older releases as a property)."""
    from ml_metadata.metadata_store import metadata_store
    from tfx import v1 as tfx

    uris = summary.components.get("MultimodalExampleGen")
    if uris is None or "examples" not in uris.outputs:
        return None
    store = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_file))
    for artifact in store.get_artifacts_by_uri(uris.outputs["examples"][0]):
        for properties in (artifact.custom_properties, artifact.properties):
            if "span" in properties:
                return int(properties["span"].int_value)
    return None


def run_round(config: PipelineConfig, warm_start: bool = True,
              progress: Optional[local_runner.Progress] = None) -> RoundResult:
    """One local retraining round on the newest span under `config.data_root`."""
    config = config.replace(span_pattern=config.span_pattern or SPAN_PATTERN)
    summary = local_runner.run_and_summarize(config, warm_start=warm_start, progress=progress)
    baseline = summary.output_property("ImpEvaluator", "blessing", "baseline_model")
    return RoundResult(span=_examples_span(config, summary),
                       warm_started_from=baseline if warm_start else None, summary=summary)


# -- Vertex AI: a pipeline job schedule ---------------------------------------------------------------


def schedule_request(config: PipelineConfig, spec: dict) -> dict:
    """The body of `projects.locations.schedules.create` for the compiled retraining pipeline."""
    vertex = config.vertex
    job = {"displayName": f"{config.name}-retraining", "pipelineSpec": spec["pipelineSpec"],
           "runtimeConfig": spec.get("runtimeConfig", {"gcsOutputDirectory": config.pipeline_root})}
    if vertex.service_account:
        job["serviceAccount"] = vertex.service_account
    return {"displayName": f"{config.name}-retraining-schedule", "cron": vertex.schedule_cron,
            "maxConcurrentRunCount": "1", "allowQueueing": False,
            "createPipelineJobRequest": {
                "parent": f"projects/{vertex.project}/locations/{vertex.region}",
                "pipelineJob": job}}


def schedule_commands(config: PipelineConfig, request_file: str) -> str:
    """The REST call (curl + gcloud auth) that creates the schedule from `request_file`."""
    vertex = config.vertex
    url = (f"https://{vertex.region}-aiplatform.googleapis.com/v1/projects/{vertex.project}"
           f"/locations/{vertex.region}/schedules")
    return ("curl -X POST -H \"Authorization: Bearer $(gcloud auth print-access-token)\" "
            "-H \"Content-Type: application/json; charset=utf-8\" "
            f"-d @{shlex.quote(request_file)} {shlex.quote(url)}")


def schedule_on_vertex(config: PipelineConfig, spec_path: str, print_only: bool = False) -> str:
    """Compiles the retraining pipeline to `spec_path` and schedules it on Vertex AI Pipelines.

    With `google-cloud-aiplatform` importable (and `print_only` False) the schedule is created through
    `aiplatform.PipelineJob(...).create_schedule(cron=...)`; otherwise the request body is written next
    to the spec (`<spec>.schedule_request.json`) and the REST command that sends it is returned.
    """
    config = config.replace(span_pattern=config.span_pattern or SPAN_PATTERN)
    spec = kubeflow_v2_runner.compile_pipeline(config, spec_path, warm_start=True)
    vertex = config.vertex
    if not print_only:
        try:
            from google.cloud import aiplatform
        except ImportError:
            aiplatform = None
        if aiplatform is not None:
            aiplatform.init(project=vertex.project, location=vertex.region)
            job = aiplatform.PipelineJob(display_name=f"{config.name}-retraining", template_path=spec_path,
                                         pipeline_root=config.pipeline_root, enable_caching=True)
            schedule = job.create_schedule(cron=vertex.schedule_cron,
                                           display_name=f"{config.name}-retraining-schedule",
                                           max_concurrent_run_count=1,
                                           service_account=vertex.service_account or None)
            return f"created schedule {schedule.resource_name} ({vertex.schedule_cron})"
    request_file = f"{spec_path}.schedule_request.json"
    with open(request_file, "w") as f:
        json.dump(schedule_request(config, spec), f, indent=2)
    return (f"wrote {spec_path} and {request_file}; create the schedule with:\n"
            + schedule_commands(config, request_file))
