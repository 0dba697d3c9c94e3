"""`make_trainer`: the benchmark's per-model training settings."""

import math

import keras
import pytest

from isnet_keras.bench.bias import (BiasBenchConfig, bench_classifier,
                                    make_trainer)


def _classifier():
    return bench_classifier((40, 40, 1), 10)


def test_selective_isnet_explains_the_configured_class():
    config = BiasBenchConfig(class_policy="label")
    with pytest.warns(UserWarning, match="label"):
        trainer = make_trainer("isnet_selective", _classifier(), config)
    assert trainer.class_policy == "label"
    assert len(trainer.train_graph.inputs) == 2  # images and labels
    default = make_trainer("isnet_selective", _classifier(),
                           BiasBenchConfig())
    assert default.class_policy == "lowest"


def test_cosine_decay_takes_the_isnet_learning_rate_to_zero_over_the_run():
    config = BiasBenchConfig(learning_rate=3e-3,
                             learning_rate_decay="cosine")
    trainer = make_trainer("isnet_stochastic", _classifier(), config,
                           total_steps=40)
    schedule = trainer.optimizer._learning_rate  # Keras keeps it here
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    for step in (0, 10, 20, 40):
        expected = 3e-3 * 0.5 * (1.0 + math.cos(math.pi * step / 40))
        assert float(schedule(step)) == pytest.approx(expected, abs=1e-9)


def test_cosine_decay_leaves_the_baselines_at_a_constant_rate():
    config = BiasBenchConfig(learning_rate=3e-3,
                             learning_rate_decay="cosine")
    trainer = make_trainer("plain", _classifier(), config, total_steps=40)
    assert not isinstance(trainer.optimizer._learning_rate,
                          keras.optimizers.schedules.LearningRateSchedule)
    assert float(trainer.optimizer.learning_rate) == pytest.approx(3e-3)


def test_decay_needs_the_run_length_and_a_known_name():
    with pytest.raises(ValueError, match="total_steps"):
        make_trainer("isnet_selective", _classifier(),
                     BiasBenchConfig(learning_rate_decay="cosine"))
    with pytest.raises(ValueError, match="'cosine'"):
        make_trainer("isnet_selective", _classifier(),
                     BiasBenchConfig(learning_rate_decay="step"),
                     total_steps=10)


def test_only_the_configured_isnets_supervise_hidden_relevance():
    config = BiasBenchConfig()
    selective = make_trainer("isnet_selective", _classifier(), config)
    assert selective.deep_supervision == ("relu_1", "relu_2", "relu_3")
    # One relevance map per supervised layer, at that layer's size.
    hidden = selective.train_graph.output["hidden"]
    assert [tuple(h.shape[2:]) for h in hidden] == [
        (40, 40, 16), (20, 20, 32), (10, 10, 64)]
    for name in ("isnet_stochastic", "isnet_original"):
        assert make_trainer(name, _classifier(), config).deep_supervision \
            == ()
    none = BiasBenchConfig(deep_supervision=())
    assert make_trainer("isnet_selective", _classifier(),
                        none).deep_supervision == ()


@pytest.mark.parametrize("flags, expected", [
    ([], ("relu_1", "relu_2", "relu_3")),
    (["--deep-supervision"], ()),
    (["--deep-supervision", "relu_3"], ("relu_3",))])
def test_command_line_chooses_the_supervised_layers(monkeypatch, flags,
                                                    expected):
    from isnet_keras import cli
    from isnet_keras.bench import bias

    configs = []
    monkeypatch.setattr(bias, "run_bias_benchmark", configs.append)
    args = cli.build_parser().parse_args(["bench", "bias", *flags])
    assert args.func(args) == 0
    assert configs[0].deep_supervision == expected
    assert configs[0].deep_supervision_models == ("isnet_selective",)
