"""AGD training on a `batch=2, expert=4` DTensor mesh equals single-device training (tiny config).

The 8 logical CPU devices come from the root conftest.py. One contrastive task (image-text: two encoder
calls, NCE, MoE aux losses) keeps the DTensor compile time down.
"""

import numpy as np
import pytest
import tensorflow as tf

from models import sharding
from models.configs import get_config
from models.features import MediaConfig
from models.training import agd, data, mesh_model, testing
from models.training.optimization import OptimizerConfig, make_optimizer
from models.training.tasks import Task

pytestmark = pytest.mark.dtensor

MEDIA = MediaConfig(image_size=16, video_frames=2, spectrogram_frames=16, text_max_length=8)
TASK = Task(name="image_text", objective="contrastive", inputs=("image", "text"), batch_size=4)
STEPS = 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = testing.write_fixture(tmp_path_factory.mktemp("ingest"), [TASK], examples_per_split=16,
                                 vocab_size=32, media=MEDIA)
    config = data.config_for_data(get_config("tiny"), data.assets_dir(root), [TASK])
    stream = data.train_dataset(TASK, data.split_files(root, TASK.train_split), config, MEDIA)
    batches = [b for _, b in zip(range(STEPS), stream)]
    mesh = sharding.make_mesh(batch=2, expert=4)
    return config, mesh, batches, stream.element_spec


def _models(config, mesh):
    return (mesh_model.build_model(config, mesh=None, seed=7),
            mesh_model.build_model(config, mesh=mesh, seed=7))


def test_expert_variables_and_their_adam_moments_are_sharded(setup):
    config, mesh, _, _ = setup
    model = mesh_model.build_model(config, mesh=mesh, seed=7)
    assert not sharding.unsharded_expert_variables(model)
    experts = {id(v) for v in model.variables if "expert_w" in v.name}
    assert len(experts) == 2 * config.encoder.moe.num_moe_layers
    optimizer = make_optimizer(OptimizerConfig(), model.trainable_variables, mesh=mesh)
    for variable in model.variables:
        layout = sharding.variable_layout(variable)
        assert layout is not None, variable.name  # every variable is a DVariable on the mesh
        if variable.shape.rank:
            expected = "expert" if id(variable) in experts else sharding.UNSHARDED
            assert layout.sharding_specs[0] == expected, variable.name
    slots = [v for v in optimizer.variables if "expert_w" in v.name]
    assert slots and all(sharding.variable_layout(v).sharding_specs[0] == "expert" for v in slots)


def test_one_step_loss_and_gradients_match_single_device(setup):
    config, mesh, batches, _ = setup
    plain, sharded = _models(config, mesh)

    def run(model, batch, mesh):
        @tf.function
        def fn(b):
            loss, metrics, grads = agd.loss_and_gradients(model, TASK, b, model.trainable_variables)
            return loss, metrics, [None if g is None else tf.convert_to_tensor(g) for g in grads]

        loss, metrics, grads = fn(mesh_model.place_batch(batch, mesh))
        return (mesh_model.to_numpy(loss, mesh), mesh_model.to_numpy(metrics["aux_loss"], mesh),
                [None if g is None else mesh_model.to_numpy(g, mesh) for g in grads])

    loss_a, aux_a, grads_a = run(plain, batches[0], None)
    loss_b, aux_b, grads_b = run(sharded, batches[0], mesh)
    assert loss_b == pytest.approx(loss_a, rel=1e-5)
    assert aux_b == pytest.approx(aux_a, rel=1e-5)
    assert aux_a > 0  # the MoE z-loss is part of the loss
    checked = 0
    for variable, ga, gb in zip(plain.trainable_variables, grads_a, grads_b):
        assert (ga is None) == (gb is None), variable.name
        if ga is not None:
            np.testing.assert_allclose(gb, ga, rtol=1e-4, atol=1e-6, err_msg=variable.name)
            checked += 1
    expert_grads = [g for v, g in zip(plain.trainable_variables, grads_a)
                    if "expert_w" in v.name and g is not None]
    assert expert_grads and all(np.abs(g).sum() > 0 for g in expert_grads)
    assert checked > 20


def test_multi_step_run_reaches_the_same_weights(setup):
    config, mesh, batches, signature = setup
    finals = []
    for model_mesh in (None, mesh):
        model = mesh_model.build_model(config, mesh=model_mesh, seed=7)
        # epsilon=1: Adam's first steps are ~lr * sign(g), which turns float noise in near-zero
        # gradients into +-lr weight differences; a large epsilon keeps the update linear in g so
        # that the comparison tests the sharded maths, not Adam's sign amplification.
        optimizer = make_optimizer(OptimizerConfig(init_lr=0.05, peak_lr=0.05, warmup_steps=1,
                                                   decay_steps=100, epsilon=1.0),
                                   model.trainable_variables, mesh=model_mesh)
        steps = agd.AgdSteps(model, optimizer)
        losses = [float(mesh_model.to_numpy(
            steps(TASK, mesh_model.place_batch(b, model_mesh), signature)["loss"], model_mesh))
            for b in batches]
        assert steps.trace_counts[TASK.name] == 1
        finals.append((losses, mesh_model.numpy_weights(model, model_mesh)))
    (losses_a, weights_a), (losses_b, weights_b) = finals
    np.testing.assert_allclose(losses_b, losses_a, rtol=1e-4)
    assert losses_a[-1] < losses_a[0]  # the steps did train
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        np.testing.assert_allclose(weights_b[name], weights_a[name], rtol=1e-3, atol=1e-5, err_msg=name)
