"""The export loads and runs where TF Serving would: core TensorFlow + tensorflow-text, nothing else.

A tiny checkpoint written by the trainer's checkpoint code is exported, then a FRESH Python process that
imports only `tensorflow` and `tensorflow_text` (never tensorflow-io, never this project):
  * checks every op of the SavedModel (graph + all library functions) against the op registry: each must
    be a core TF op or one that registering tensorflow_text adds, and no DTensor op may appear;
  * loads the model and runs every signature on real encodings (PIL PNG/JPEG, a `wave` WAV), checking
    output shapes and L2 norms.
`saved_model_cli show --all` must list every signature too.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from serving import export, signatures
from serving.export_test import MEDIA, write_tiny_run

pytestmark = pytest.mark.slow  # an export plus a fresh TensorFlow process: about 1.5 minutes on 2 cores

CLEAN_PROCESS = textwrap.dedent(r'''
    import io, json, sys, wave
    import numpy as np
    from PIL import Image
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry

    export_dir, frames, sample_rate, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    saved_model = saved_model_pb2.SavedModel()
    with open(export_dir + "/saved_model.pb", "rb") as f:
        saved_model.ParseFromString(f.read())
    graph = saved_model.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
    ops -= {function.signature.name for function in graph.library.function}  # calls of library functions
    core = {op for op in ops if op_def_registry.get(op) is not None}

    import tensorflow_text  # noqa: F401  registers its ops, as the TF Serving binary links them
    text = {op for op in ops - core if op_def_registry.get(op) is not None}

    def png(seed, size):
        rng = np.random.default_rng(seed)
        out = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size + 9, 3), dtype=np.uint8)).save(out, "PNG")
        return out.getvalue()

    def jpeg(seed, size):
        out = io.BytesIO()
        Image.open(io.BytesIO(png(seed, size))).save(out, "JPEG", quality=85)
        return out.getvalue()

    def wav(seed):
        t = np.arange(int(sample_rate * seconds)) / sample_rate
        samples = (0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t) * 32767).astype("<i2")
        out = io.BytesIO()
        with wave.open(out, "wb") as w:
            w.setnchannels(1); w.setsampwidth(2); w.setframerate(sample_rate); w.writeframes(samples.tobytes())
        return out.getvalue()

    def example(seed):
        feature = lambda *v: tf.train.Feature(bytes_list=tf.train.BytesList(value=list(v)))
        return tf.train.Example(features=tf.train.Features(feature={
            "id": feature(b"x%d" % seed), "text": feature(b"a handwritten seven"), "image": feature(jpeg(seed, 50)),
            "audio": feature(wav(seed)), "video_frames": feature(*[jpeg(seed + f, 40) for f in range(frames)]),
        })).SerializeToString()

    strings = lambda values: tf.constant(np.array(values, dtype=object))
    images = strings([png(0, 48), jpeg(1, 64), png(2, 30)])
    wavs = strings([wav(0), wav(1), wav(2)])
    clips = strings([[jpeg(10 * i + f, 40) for f in range(frames)] for i in range(3)])
    classes = strings([b"seven", b"cat", b"dog", b"two"])
    requests = {
        "embed_text": {"text": strings([b"a seven", b"the sound of a dog", b"qqq"])},
        "embed_text_for_audio": {"text": strings([b"a seven", b"the sound of a dog", b"x"])},
        "embed_image": {"image_bytes": images},
        "embed_audio": {"audio_bytes": wavs},
        "embed_video": {"frames_bytes": clips},
        "embed_video_audio": {"frames_bytes": clips, "audio_bytes": wavs},
        "zero_shot": {"image_bytes": images, "class_names": classes},
        "zero_shot_audio": {"audio_bytes": wavs, "class_names": classes},
        "zero_shot_video": {"frames_bytes": clips, "class_names": classes},
        "serving_examples": {"examples": strings([example(0), example(1), example(2)])},
        "serving_default": {"examples": strings([example(3), example(4), example(5)])},
    }
    loaded = tf.saved_model.load(export_dir)
    results = {}
    for name, inputs in requests.items():
        outputs = loaded.signatures[name](**inputs)
        results[name] = {key: {"shape": value.shape.as_list(),
                               "norms": np.linalg.norm(value.numpy(), axis=-1).tolist()}
                         for key, value in outputs.items()}
    modules = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow_io", "models", "serving",
                                                                   "components", "pipeline", "imp_tfx"))
    print(json.dumps({"ops": sorted(ops), "unknown_ops": sorted(ops - core - text), "text_ops": sorted(text),
                      "signatures": sorted(loaded.signatures), "results": results, "modules": modules}))
''')


@pytest.fixture(scope="module")
def version_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    run_dir, _ = write_tiny_run(root, seed=3)
    return export.export_serving_model(run_dir, root / "serving", "imp",
                                       transform_graph_dir=root / "transform_graph", version=5)


def _fresh_env():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def test_export_runs_in_a_clean_process_with_only_core_and_text_ops(version_dir, tmp_path):
    assert version_dir.endswith(os.path.join("imp", "5"))
    script = tmp_path / "clean_load.py"
    script.write_text(CLEAN_PROCESS)
    done = subprocess.run(
        [sys.executable, str(script), version_dir, str(MEDIA.video_frames), str(MEDIA.audio.sample_rate),
         str(MEDIA.audio_seconds)],
        cwd=tmp_path, env=_fresh_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["modules"] == []  # neither tensorflow-io nor any project package was imported
    assert report["unknown_ops"] == []
    assert not [op for op in report["ops"] if "Relayout" in op or "DTensor" in op or "Mesh" in op]
    assert "WordpieceTokenizeWithOffsets" in report["text_ops"]  # the tokenizer really is in the graph
    assert {"DecodeImage", "DecodeWav", "ParseExampleV2"} <= set(report["ops"])

    assert set(report["signatures"]) == set(signatures.SIGNATURE_NAMES) | {"serving_default"}
    results = report["results"]
    for name, outputs in results.items():
        for key, value in outputs.items():
            assert value["shape"][0] == 3, (name, key)
            if key == "embedding" or (key.endswith("_embedding") and name.startswith("serving")):
                assert value["shape"][1] == 64
                assert all(abs(n - 1.0) < 1e-4 for n in value["norms"]), (name, key, value)
    for name in ("zero_shot", "zero_shot_audio", "zero_shot_video"):
        assert results[name]["scores"]["shape"] == [3, 4]
        assert results[name]["probabilities"]["shape"] == [3, 4]


def test_saved_model_cli_lists_every_signature(version_dir):
    done = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir", version_dir, "--all"],
        env=_fresh_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    listed = {line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("signature_def['")}
    # TF adds `__saved_model_init_op` (it initializes the vocabulary table from the asset).
    assert listed - {"__saved_model_init_op"} == set(signatures.SIGNATURE_NAMES) | {"serving_default"}
    assert "The given SavedModel SignatureDef contains the following input(s):" in done.stdout
    assert "inputs['frames_bytes'] tensor_info:" in done.stdout
