"""The public API and the command line's entry point."""

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
