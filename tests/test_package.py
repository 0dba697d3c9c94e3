"""The public API and the command line's entry point."""

import os
import subprocess
import sys

import isnet_keras


def test_public_names_resolve():
    for name in isnet_keras.__all__:
        assert getattr(isnet_keras, name) is not None, name


def test_cli_help_lists_the_commands_without_importing_tensorflow():
    code = ("import sys; from isnet_keras.cli import build_parser; "
            "build_parser(); print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "False"
    help_text = subprocess.run(
        [sys.executable, "-m", "isnet_keras.cli", "--help"],
        capture_output=True, text=True, check=True).stdout
    for command in ("bench", "metrics"):
        assert command in help_text


def test_cli_turns_onednn_on_unless_the_user_turned_it_off():
    code = ("import os\n"
            "from isnet_keras.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "import tensorflow\n"
            "from tensorflow.python.util import _pywrap_util_port\n"
            "print(_pywrap_util_port.IsMklEnabled())\n")
    states = {}
    for preset in (None, "0"):
        env = {k: v for k, v in os.environ.items()
               if k != "TF_ENABLE_ONEDNN_OPTS"}
        if preset is not None:
            env["TF_ENABLE_ONEDNN_OPTS"] = preset
        result = subprocess.run([sys.executable, "-c", code], env=env,
                                capture_output=True, text=True, check=True)
        states[preset] = result.stdout.strip().splitlines()[-1]
    assert states == {None: "True", "0": "False"}
