"""The user guide's worked example, run command by command.

Every command of the ```bash blocks of docs/guide.md runs here, in order,
in a fresh folder: `isnet ...` through the CLI entry point, `python -m
MODULE ...` through the module's `main`, anything else in a shell. The
first `isnet train` is interrupted in its second epoch; the guide's
`--resume` command must then continue from the first epoch's checkpoint.
"""

import argparse
import importlib
import json
import pathlib
import re
import shlex
import subprocess

import keras
import numpy as np
import pytest

from isnet_keras.cli import main as isnet_main
from isnet_keras.cli import train as cli_train

ROOT = pathlib.Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide.md"


def guide_commands(text):
    """Commands of the ```bash blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        commands += [line.strip() for line in joined.splitlines()
                     if line.strip() and not line.strip().startswith("#")]
    return commands


class Interrupted(Exception):
    """Stands for a kill in the middle of an epoch."""


class InterruptInSecondEpoch(keras.callbacks.Callback):
    """Records the weights, then raises in epoch 2, after batch 2."""

    initial = None
    after_first_epoch = None

    def on_train_begin(self, logs=None):
        self.initial = self.model.deploy_model.get_weights()

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            self.after_first_epoch = self.model.deploy_model.get_weights()

    def on_train_batch_end(self, batch, logs=None):
        if self.after_first_epoch is not None and batch == 1:
            raise Interrupted("simulated kill in epoch 2")


class RecordStart(keras.callbacks.Callback):
    """The first epoch index and the weights before the first step."""

    first_epoch = None
    start_weights = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.start_weights is None:
            self.start_weights = self.model.deploy_model.get_weights()


def _run_train(argv, callback):
    parser = cli_train.register(argparse.ArgumentParser().add_subparsers())
    return cli_train.run_command(parser.parse_args(argv), callbacks=[callback])


def _run(command, interrupter, recorder):
    words = shlex.split(command)
    if words[:2] == ["isnet", "train"]:
        if "--resume" in words:
            assert _run_train(words[2:], recorder) == 0, command
        else:
            with pytest.raises(Interrupted):
                _run_train(words[2:], interrupter)
        return
    if words[0] == "isnet":
        assert isnet_main(words[1:]) == 0, command
        return
    if words[:2] == ["python", "-m"]:
        module = importlib.import_module(words[2])
        assert module.main(words[3:]) == 0, command
        return
    subprocess.run(command, shell=True, check=True)


@pytest.mark.slow
def test_guide_worked_example_trains_resumes_evaluates_and_exports(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    commands = guide_commands(GUIDE.read_text(encoding="utf-8"))
    trains = [c for c in commands if c.startswith("isnet train")]
    # The resume command is the first one plus --resume: nothing else may
    # change, or the guide would teach resuming with other settings.
    assert len(trains) == 2 and trains[1] == trains[0] + " --resume"
    assert any(c.startswith("isnet evaluate") for c in commands)
    assert any(c.startswith("isnet export") for c in commands)

    interrupter, recorder = InterruptInSecondEpoch(), RecordStart()
    for command in commands:
        _run(command, interrupter, recorder)

    # The resumed run starts at the second epoch from the first epoch's
    # weights, not from a fresh initialisation.
    assert recorder.first_epoch == 1
    for resumed, saved in zip(recorder.start_weights,
                              interrupter.after_first_epoch):
        np.testing.assert_array_equal(resumed, saved)
    assert any(not np.array_equal(a, b) for a, b in
               zip(recorder.start_weights, interrupter.initial))

    run = tmp_path / "runs" / "decoy"
    history = (run / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1"]
    metadata = json.loads(
        (run / "backup" / "training_metadata.json").read_text())
    assert metadata["epoch"] == 2  # kept: --resume --epochs 3 would go on
    report = json.loads((run / "report" / "evaluation.json").read_text())
    assert report["num_images"] == json.loads(
        (run / "run.json").read_text())["num_val"]
    assert report["background_attention"]["brf"]["n"] == report["num_images"]
    clean = json.loads(
        (run / "eval_clean" / "evaluation.json").read_text())
    assert clean["num_images"] == 10
    assert (tmp_path / "serving" / "decoy" / "1" / "saved_model.pb").is_file()


def test_guide_config_files_are_valid_run_configurations():
    import yaml

    from isnet_keras import run_config

    blocks = re.findall(r"```yaml\n(.*?)```",
                        GUIDE.read_text(encoding="utf-8"), flags=re.S)
    assert blocks
    for block in blocks:
        values = yaml.safe_load(block)
        assert set(values) <= set(run_config.DEFAULTS)
        config = run_config.effective_config(values, {"data_dir": "d",
                                                      "out": "r"})
        assert all(config[key] == value for key, value in values.items()
                   if key not in ("data_dir", "out"))
