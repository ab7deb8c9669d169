import types

from models.features import MediaConfig
from models.training import checkpointing, run_fn, testing
from models.training.tasks import Task

MEDIA = MediaConfig(image_size=16, video_frames=2, spectrogram_frames=16, text_max_length=8)


def test_run_fn_regroups_splits_and_writes_the_export_dir(tmp_path):
    tasks = (Task(name="image_text", objective="contrastive", inputs=("image", "text"), batch_size=4),)
    root = testing.write_fixture(tmp_path / "data", tasks, examples_per_split=8, vocab_size=24,
                                 media=MEDIA)
    examples = root / "transformed_examples"
    exported = []
    fn_args = types.SimpleNamespace(
        train_files=[str(examples / "Split-train_image_text" / "*")],
        eval_files=[str(examples / "Split-eval_image_text" / "*")],
        train_steps=2, transform_graph_path=str(root / "transform_graph"),
        model_run_dir=str(tmp_path / "run"), serving_model_dir=str(tmp_path / "serving"),
        custom_config={"tasks": [t.to_dict() for t in tasks], "model_config": "tiny-dense",
                       "media": {"image_size": 16, "video_frames": 2, "spectrogram_frames": 16,
                                 "text_max_length": 8},
                       "train": {"log_every": 1, "checkpoint_every": 0}})
    result = run_fn.run_fn(fn_args, export_fn=lambda d, m, r: exported.append(d))
    assert result.steps == 2 and exported == [tmp_path / "serving"]
    assert (tmp_path / "run" / "tensorboard" / "image_text").is_dir()
    model = checkpointing.restore_unsharded(tmp_path / "serving")
    assert model.imp_config.name == "tiny-dense"


def test_group_files_by_split(tmp_path):
    for split in ("train_a", "train_b"):
        (tmp_path / f"Split-{split}").mkdir()
        (tmp_path / f"Split-{split}" / "x.gz").write_text("")
    grouped = run_fn.group_files_by_split([str(tmp_path / "Split-train_a" / "*"),
                                           str(tmp_path / "Split-train_b" / "x.gz")])
    assert sorted(grouped) == ["train_a", "train_b"] and len(grouped["train_a"]) == 1
