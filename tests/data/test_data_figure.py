"""The bias-samples figure script runs end to end on the offline digits."""

import importlib.util
from pathlib import Path

from PIL import Image

from isnet_keras.data import make_bias_benchmark

SCRIPT = Path(__file__).resolve().parents[2] / "training" / "plot_bias_samples.py"


def test_plot_bias_samples_writes_a_png(tmp_path):
    spec = importlib.util.spec_from_file_location("plot_bias_samples", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    benchmarks = [
        make_bias_benchmark(name, source="digits", limit_per_class=5)
        for name in ("shapes", "decoy")
    ]
    output = tmp_path / "figure.png"
    script.plot(benchmarks, columns=3, output=output)
    with Image.open(output) as image:
        assert image.format == "PNG"
        assert image.width > 300 and image.height > 600
