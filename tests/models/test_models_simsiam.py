"""The SimSiam model, optimiser, schedule, callbacks and precision switch, on the current backend."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from models.config import SimSiamConfig, configure_precision
from models.monitors import KNNMonitor, LearningRateLogger, embed
from models.optimizer import SimSiamSGD
from models.simsiam import build_simsiam, compile_simsiam, make_schedule

SIZE, BATCH = 16, 8


def tiny_config(**overrides) -> SimSiamConfig:
    values = dict(
        image_size=SIZE,
        width=0.125,
        batch_size=BATCH,
        epochs=2,
        warmup_epochs=1,
        proj_dim=32,
        proj_hidden_dim=32,
        pred_hidden_dim=8,
    )
    return SimSiamConfig(**{**values, **overrides})


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def numpy_weights(variables) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


def test_call_returns_float32_projections_and_predictions_for_two_views():
    model = build_simsiam(tiny_config())
    out = model(images(4), training=True)
    assert sorted(out) == ["p1", "p2", "z1", "z2"]
    for value in out.values():
        assert tuple(value.shape) == (4, 32) and keras.backend.standardize_dtype(value.dtype) == "float32"
    assert not np.allclose(keras.ops.convert_to_numpy(out["z1"]), keras.ops.convert_to_numpy(out["z2"]))


@pytest.fixture(scope="module")
def trained():
    """One compiled (jit) tiny model, fitted 3 epochs x 2 steps with the monitors; Python calls counted."""
    config = tiny_config()
    model = compile_simsiam(build_simsiam(config), config, steps_per_epoch=2, jit_compile=True)
    traces = []
    original = model.compute_loss

    def counting_compute_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
        traces.append(1)  # Python runs only while tracing once the step is compiled
        return original(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)

    model.compute_loss = counting_compute_loss
    knn_data = images(24, seed=1), np.arange(24) % 3, images(12, seed=2), np.arange(12) % 3
    monitor = KNNMonitor(*knn_data, every_n_epochs=2, k=5)
    history = model.fit(images(16), batch_size=BATCH, epochs=3, verbose=0, callbacks=[LearningRateLogger(), monitor])
    return {
        "model": model,
        "config": config,
        "history": history.history,
        "traces": traces,
        "monitor": monitor,
        "knn_data": knn_data,
    }


def test_fit_takes_uint8_images_without_labels_and_logs_the_monitors(trained):
    history, config = trained["history"], trained["config"]
    assert set(history) == {"loss", "collapse_std", "learning_rate", "knn_accuracy"}
    assert len(history["loss"]) == 3 and all(-1.0 <= v <= 1.0 for v in history["loss"])
    assert all(0.0 < v < 2.0 for v in history["collapse_std"])
    # 1 warm-up epoch of 2 steps, then cosine over 2 more: logged is the rate of the next step.
    schedule = make_schedule(config, steps_per_epoch=2)
    expected = [float(keras.ops.convert_to_numpy(schedule(step))) for step in (2, 4, 6)]
    assert history["learning_rate"] == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_train_step_is_compiled_and_traced_once(trained):
    assert trained["model"].jit_compile is True
    assert 1 <= len(trained["traces"]) <= 2, f"compute_loss ran {len(trained['traces'])} times in 6 steps"


def test_knn_monitor_logs_accuracy_of_the_encoder(trained):
    model, monitor = trained["model"], trained["monitor"]
    assert 0.0 <= monitor.initial_accuracy <= 1.0
    assert sorted(monitor.history) == [2, 3]  # every 2 epochs, and after the last one
    assert trained["history"]["knn_accuracy"] == [monitor.history[2], monitor.history[3]]
    assert monitor.history[3] == pytest.approx(monitor.accuracy())
    features = embed(model.encoder, trained["knn_data"][0], batch_size=5)
    assert features.shape == (24, model.encoder.output.shape[-1]) and features.dtype == np.float32


def test_predictor_moves_with_the_fixed_rate_and_the_rest_with_the_schedule():
    config = tiny_config(warmup_epochs=2, epochs=4, weight_decay=5e-4)
    data = images(BATCH, seed=3)

    def one_step(optimizer_factory):
        keras.utils.set_random_seed(1)
        model = build_simsiam(config)
        before = numpy_weights(model.trainable_variables)
        model.compile(optimizer=optimizer_factory(model), jit_compile=False)
        model.fit(data, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        deltas = [a - b for a, b in zip(numpy_weights(model.trainable_variables), before)]
        is_pred = [v.path.startswith("simsiam/predictor") for v in model.trainable_variables]
        return deltas, is_pred

    from models.simsiam import make_optimizer

    fixed_deltas, is_pred = one_step(lambda m: make_optimizer(m, config, steps_per_epoch=5))
    assert float(keras.ops.convert_to_numpy(make_schedule(config, steps_per_epoch=5)(0))) == 0.0
    plain_deltas, _ = one_step(lambda m: SimSiamSGD(config.base_lr, momentum=0.9, l2=config.weight_decay))
    assert any(is_pred) and not all(is_pred)
    # First step from zero momentum: delta = -lr * (g + l2 * w), with identical g and w in both runs.
    # The warm-up starts at rate 0, so only the predictor (fixed rate base_lr) moves.
    assert all(np.abs(d).max() > 0 for d, p in zip(plain_deltas, is_pred) if p)
    for fixed, plain, pred in zip(fixed_deltas, plain_deltas, is_pred):
        if pred:  # atol: deltas are differences of float32 weights (spacing ~6e-8 near 1)
            np.testing.assert_allclose(fixed, plain, rtol=1e-4, atol=1e-6)
        else:
            np.testing.assert_array_equal(fixed, 0.0)


def test_sgd_update_equals_hand_computation_with_l2_momentum_and_fixed_rate():
    w_sched = keras.Variable(np.array([1.0, -2.0], "float32"), name="w")
    with keras.name_scope("predictor"):
        w_fixed = keras.Variable(np.array([0.5, 3.0], "float32"), name="w")
    assert w_fixed.path == "predictor/w"
    g = np.array([0.25, 0.5], "float32")
    opt = SimSiamSGD(learning_rate=0.1, momentum=0.9, l2=0.01, fixed_learning_rate=0.5)
    expected = {}
    for name, w0, lr in (("sched", np.array([1.0, -2.0]), 0.1), ("fixed", np.array([0.5, 3.0]), 0.5)):
        w, m = w0.copy(), np.zeros(2)
        for _ in range(2):
            m = 0.9 * m - lr * (g + 0.01 * w)
            w = w + m
        expected[name] = w
    for _ in range(2):
        opt.apply_gradients([(g, w_sched), (g, w_fixed)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w_sched), expected["sched"], rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w_fixed), expected["fixed"], rtol=1e-6)
    with pytest.raises(ValueError, match="no variable path contains"):
        SimSiamSGD(0.1, fixed_learning_rate=0.5).build([w_sched])


def test_saved_model_reloads_with_its_weights_and_the_fixed_predictor_rate(trained, tmp_path):
    model = trained["model"]
    model.compute_loss = type(model).compute_loss.__get__(model)  # drop the fixture's counting wrapper
    model.save(tmp_path / "simsiam.keras")
    loaded = keras.saving.load_model(tmp_path / "simsiam.keras")
    x = trained["knn_data"][2].astype("float32") / 255.0
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded.encoder(x)),
        keras.ops.convert_to_numpy(model.encoder(x)),
        rtol=1e-5,
        atol=1e-6,
    )
    assert isinstance(loaded.optimizer, SimSiamSGD) and len(loaded.optimizer._fixed_keys) == 5
    assert loaded.optimizer.fixed_learning_rate == trained["config"].base_lr


def test_schedule_is_linear_warmup_then_cosine_to_the_final_rate_at_the_last_step():
    config = SimSiamConfig(base_lr=0.1, final_lr=0.001, epochs=11, warmup_epochs=1)
    s = make_schedule(config, steps_per_epoch=10)  # 10 warm-up steps, cosine over the other 100
    value = lambda step: float(keras.ops.convert_to_numpy(s(step)))  # noqa: E731
    assert value(0) == 0.0 and value(4) == pytest.approx(0.04) and value(10) == pytest.approx(0.1)
    assert value(60) == pytest.approx(0.001 + 0.5 * 0.099, rel=1e-5)
    assert value(35) == pytest.approx(0.001 + 0.5 * 0.099 * (1 + math.cos(math.pi / 4)), rel=1e-5)
    assert value(110) == pytest.approx(0.001) and value(500) == pytest.approx(0.001)
    no_warmup = make_schedule(SimSiamConfig(base_lr=0.1, epochs=2, warmup_epochs=0), steps_per_epoch=5)
    assert float(keras.ops.convert_to_numpy(no_warmup(0))) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        make_schedule(config, steps_per_epoch=0)


def test_mixed_precision_only_with_a_gpu_and_losses_stay_float32():
    try:
        assert configure_precision(False) == "float32"
        assert keras.mixed_precision.global_policy().name == "float32"
        assert configure_precision(True) == "mixed_bfloat16"
        config = tiny_config()
        model = build_simsiam(config)
        assert model.encoder.get_layer("resnet18").get_layer("stem_conv").compute_dtype == "bfloat16"
        assert model.augmentation.compute_dtype == "float32"
        out = model(images(4), training=True)
        assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in out.values())
        loss = model.compute_loss(y_pred=out)
        assert keras.backend.standardize_dtype(loss.dtype) == "float32" and np.isfinite(float(loss))
        with pytest.raises(ValueError):
            configure_precision(True, precision="float64")
        with pytest.raises(ValueError):
            configure_precision(True, precision="mixed_bfloat16")  # a Keras policy name is not a precision
        assert configure_precision(False, "bf16") == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_config_round_trips_and_rejects_unknown_or_bad_values():
    config = SimSiamConfig()
    assert (config.batch_size, config.base_lr, config.weight_decay, config.momentum) == (128, 0.06, 5e-4, 0.9)
    assert (config.backbone, config.image_size, config.proj_dim, config.pred_hidden_dim) == ("resnet18", 64, 2048, 512)
    assert SimSiamConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        SimSiamConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError):
        SimSiamConfig(warmup_epochs=500, epochs=400)
