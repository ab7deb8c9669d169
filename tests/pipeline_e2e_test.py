"""The whole TFX pipeline on a small demo dataset: every component's artifacts, blessing, push, caching on
a rerun, and the pushed model answering through `imp-tfx serve`."""

import json
import os
import pathlib

import numpy as np
import pytest

from components.evaluator import executor as evaluator_executor
from components.evaluator.blessing import BlessingPolicy
from pipeline import local_runner
from pipeline.configs import PipelineConfig

pytestmark = pytest.mark.slow

COMPONENTS = ("MultimodalExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform",
              "Trainer", "ImpEvaluator", "Pusher")
CACHEABLE = ("MultimodalExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform",
             "Trainer")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# A few steps of the tiny model cannot be expected to beat chance; this test checks the mechanics
# (the demo checks accuracy), so the gate only requires the metrics to exist.
MECHANICS_ONLY = BlessingPolicy(lower_bounds=(("zero_shot/*/accuracy", 0.0),
                                              ("retrieval/*/recall@5", 0.0)))


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    from components.demo_data.generator import generate_demo_dataset

    out = tmp_path_factory.mktemp("data")
    generate_demo_dataset(str(out), examples=120, seed=0)
    return out


@pytest.fixture(scope="module")
def first_run(demo_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    config = PipelineConfig(name="imp-e2e", pipeline_root=str(root), data_root=str(demo_data),
                            model_config="tiny", train_steps=12, blessing=MECHANICS_ONLY,
                            eval_options={"max_examples": 32})
    return config, local_runner.run_and_summarize(config)


def _files(uri):
    return [p for p in pathlib.Path(uri).rglob("*") if p.is_file()]


def test_every_component_ran_and_produced_artifacts(first_run):
    _, summary = first_run
    assert set(COMPONENTS) <= set(summary.components)
    for name in COMPONENTS:
        assert summary.components[name].state == local_runner.COMPLETE, summary.describe()
    examples = pathlib.Path(summary.output("MultimodalExampleGen", "examples"))
    assert (examples / "Split-train_image_text").is_dir() and (examples / "Split-eval_video_text").is_dir()
    for component, key in (("StatisticsGen", "statistics"), ("SchemaGen", "schema"),
                           ("ExampleValidator", "anomalies"), ("Transform", "transformed_examples"),
                           ("Transform", "transform_graph"), ("Trainer", "model_run")):
        assert _files(summary.output(component, key)), f"{component}.{key} is empty"
    serving_dir = pathlib.Path(summary.output("Trainer", "model")) / "Format-Serving"
    assert (serving_dir / "saved_model.pb").is_file()


def test_model_was_evaluated_blessed_and_pushed(first_run):
    config, summary = first_run
    record = evaluator_executor.read_evaluation(summary.output("ImpEvaluator", "evaluation"))
    names = set(record["candidate"])
    assert {"zero_shot/image_cls/accuracy", "zero_shot/audio_cls/accuracy"} <= names
    assert any(n.startswith("retrieval/video_text/") and n.endswith("recall@5") for n in names)
    assert all(0.0 <= v <= 1.0 for n, v in record["candidate"].items() if "accuracy" in n or "recall" in n)
    assert summary.blessed and summary.pushed
    assert os.path.isfile(os.path.join(summary.output("ImpEvaluator", "blessing"), "BLESSED"))
    versions = [d for d in os.listdir(config.serving_path) if d.isdigit()]
    assert versions == [str(summary.pushed_version)]
    assert os.path.isfile(os.path.join(config.serving_path, versions[0], "saved_model.pb"))


def test_rerun_reuses_cached_outputs(first_run):
    config, summary = first_run
    rerun = local_runner.run_and_summarize(config)
    for name in CACHEABLE:
        assert rerun.components[name].state == local_runner.CACHED, rerun.describe()
        assert rerun.components[name].outputs == summary.components[name].outputs
    # The evaluator reruns once because its baseline input changed (the first model is now the latest
    # blessed one); it recognises the candidate as its own baseline.
    assert rerun.components["ImpEvaluator"].execution_id != summary.components["ImpEvaluator"].execution_id


def test_pushed_model_answers_through_imp_tfx_serve(first_run, demo_data):
    from serving.client import GrpcClient
    from serving.query import prepare_media
    from serving.testing import run_server

    config, _ = first_run
    held_back = [json.loads(line) for line in (demo_data / "image_cls.jsonl").read_text().splitlines()
                 if json.loads(line)["split"] == "eval"]
    images = [prepare_media("image", str(demo_data / line["image"]))["image_bytes"] for line in held_back]
    with run_server(config.serving_path, model_name="imp") as server:
        host, port = server.grpc_target.rsplit(":", 1)
        client = GrpcClient(host, int(port))
        assert any(v["state"] == "AVAILABLE" for v in client.model_status("imp"))
        out = client.predict("imp", "zero_shot", {"image_bytes": np.array(images, dtype=object),
                                                  "class_names": np.array(DIGITS, dtype=object)})
    probabilities = np.asarray(out["probabilities"])
    assert probabilities.shape == (len(images), len(DIGITS))
    assert np.allclose(probabilities.sum(axis=-1), 1.0, atol=1e-4)
    assert np.all(np.isfinite(np.asarray(out["scores"])))
