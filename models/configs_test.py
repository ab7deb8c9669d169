"""Tests of the model presets and their serialization."""

import json

import pytest

from models.configs import CONFIGS, ImpConfig, get_config
from models.imp_model import ImpModel


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_preset_round_trips_through_json(name):
    config = get_config(name).with_vocab_size(1234).with_classifiers({"b": 3, "a": 7})
    restored = ImpConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert restored.heads.classifiers == (("a", 7), ("b", 3))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_preset_round_trips_through_the_keras_model_config(name):
    model = ImpModel(get_config(name))  # not built: construction only
    clone = ImpModel.from_config(json.loads(json.dumps(model.get_config())))
    assert clone.imp_config == model.imp_config
    assert clone.name == model.name


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_presets_are_consistent(name):
    config = get_config(name)
    encoder = config.encoder
    assert encoder.d_model % encoder.num_heads == 0
    assert len(encoder.moe_layer_indices) == encoder.moe.num_moe_layers * encoder.moe.enabled
    assert encoder.qk_layernorm == encoder.moe.enabled  # qk-LN only in MoE models (IMP)
    assert all(b >= 1 for b in config.vision.pos_buckets + config.audio.pos_buckets)
    assert config.text.max_length <= config.text.max_positions


def test_paper_sizes():
    assert get_config("MoE-B").encoder.moe_layer_indices == tuple(range(6, 12))
    assert get_config("MoE-L").encoder.moe_layer_indices == tuple(range(18, 24))
    assert get_config("MoE-B").heads.temperature_init == 1.0
    assert get_config("B").heads.temperature_init == 0.2
    assert get_config("B").vision.pos_buckets == (16, 32, 32)
    assert get_config("B").audio.pos_buckets == (64, 8)


def test_unknown_fields_and_names_are_rejected():
    with pytest.raises(ValueError, match="unknown"):
        ImpConfig.from_dict({"encoder": {"layers": 3}})
    with pytest.raises(ValueError, match="unknown model config"):
        get_config("XXL")
