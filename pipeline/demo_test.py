"""Demo helpers: held-back example selection, queries (with a stand-in querier) and their report."""

import json

import numpy as np

from pipeline import demo


def _write_manifest(root, task, lines):
    (root / f"{task}.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")


class _OneHotQuerier:
    """Embeds a video/text by the digit named in its file name / caption: perfect retrieval."""

    DIGITS = ("zero", "one", "two")

    def _vec(self, text):
        return np.eye(3, dtype=np.float32)[next(i for i, d in enumerate(self.DIGITS) if d in text)]

    def embed_texts(self, texts):
        return np.stack([self._vec(t) for t in texts])

    def embed_files(self, kind, paths):
        return np.stack([self._vec(p) for p in paths])

    def zero_shot(self, kind, path, labels):
        scores = {label: float(self._vec(path) @ self._vec(label)) for label in labels}
        ordered = dict(sorted(scores.items(), key=lambda kv: -kv[1]))
        return {"scores": ordered, "top": next(iter(ordered))}


def test_queries_pick_held_back_examples_and_rank_retrieval(tmp_path):
    _write_manifest(tmp_path, "image_cls", [
        {"id": "a", "split": "train", "image": "images/one-train.png", "label": "one"},
        {"id": "b", "split": "eval", "image": "images/two-eval.png", "label": "two"}])
    _write_manifest(tmp_path, "video_text", [
        {"id": f"v{i}", "split": "eval", "video": f"videos/{d}.mp4", "text": f"the digit {d} moving left"}
        for i, d in enumerate(("zero", "one", "two"))])
    assert [e["id"] for e in demo.held_back(tmp_path, "image_cls")] == ["b"]
    assert demo.held_back(tmp_path, "image_cls")[0]["image"] == str(tmp_path / "images/two-eval.png")

    answers = demo.run_queries(_OneHotQuerier(), tmp_path, list(_OneHotQuerier.DIGITS))
    assert [(a["kind"], a["truth"], a["predicted"]) for a in answers["zero_shot"]] == [("image", "two", "two")]
    retrieval = answers["text_to_video"]
    assert retrieval["candidates"] == 3 and retrieval["true_video_rank"] == 1
    assert retrieval["recall@1"] == 1.0
    text = demo.format_answers(answers)
    assert "truth=two" in text and "ranked #1" in text


def test_presets_and_config(tmp_path):
    assert demo.DEFAULT_SIZE in demo.SIZES
    config = demo.demo_config(demo.SIZES["tiny"], tmp_path)
    assert config.serving_path == str(tmp_path / "serving" / "imp")
    assert config.data_root == str(tmp_path / "data")
    assert config.train_steps == demo.SIZES["tiny"].train_steps
