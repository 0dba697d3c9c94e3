"""A zoo of background-bias generators on MNIST digits.

Every family puts a real digit on a black canvas and adds a cue that
depends on a class, always in the background: outside the foreground mask,
which is built from the digit alone (pixels > 0, one 3x3 dilation, as
`foreground_masks` does). Families with a cue at a known place (a shape, a
patch, a marker, a frame, a watermark) clear every candidate place from
every mask, as `bias.py` does; families whose cue fills the background (a
texture, a grey level, noise) paint it only where the mask is 0.

Each family has three renderings of the same digits (`ZOO_TEST_SETS`):
`"biased"` (the cue of the image's own class), `"clean"` (no cue) and
`"confounding"` (the cue of class (y + 1) mod K). `make_zoo_benchmark`
loads digits, splits them 70/10/20 and builds biased and clean training
sets and the three test sets. The families are described in
`docs/data.md`, section "Bias zoo".

NumPy, SciPy and Pillow only; importing this module does not import
TensorFlow.

The code is split by job: `zoo_placed` (cues at a fixed place),
`zoo_background` (cues filling the background), `zoo_render` (the family
table and `zoo_images`) and `zoo_benchmark` (`make_zoo_benchmark`). Every
name is importable from this module.
"""

from isnet_keras.data.zoo_background import (
    BRIGHTNESS_LEVELS,
    NOISE_STDS,
    TEXTURE_AMPLITUDE,
    TEXTURE_ORIENTATIONS_DEG,
    TEXTURE_WAVELENGTHS,
    texture_layer,
)
from isnet_keras.data.zoo_benchmark import ZooBenchmark, make_zoo_benchmark
from isnet_keras.data.zoo_placed import (
    FRAME_CODES,
    FRAME_WIDTH,
    GLYPH_FONT,
    GLYPH_HEIGHT,
    GLYPH_WIDTH,
    MARKER_LEFTS,
    MARKER_SIDE_LETTERS,
    MARKER_TOP,
    MARKER_WIDTH,
    WATERMARK_OPACITY,
    WATERMARK_ORIGIN,
    WATERMARK_SCALE,
    frame_candidate_regions,
    frame_layer,
    frame_segments,
    glyph_pattern,
    marker_pattern,
    watermark_candidate_regions,
)
from isnet_keras.data.zoo_render import (
    ZOO_FAMILIES,
    ZOO_TEST_SETS,
    ZooFamily,
    zoo_candidate_regions,
    zoo_family,
    zoo_images,
)

__all__ = [
    "BRIGHTNESS_LEVELS",
    "FRAME_CODES",
    "FRAME_WIDTH",
    "GLYPH_FONT",
    "GLYPH_HEIGHT",
    "GLYPH_WIDTH",
    "MARKER_LEFTS",
    "MARKER_SIDE_LETTERS",
    "MARKER_TOP",
    "MARKER_WIDTH",
    "NOISE_STDS",
    "TEXTURE_AMPLITUDE",
    "TEXTURE_ORIENTATIONS_DEG",
    "TEXTURE_WAVELENGTHS",
    "WATERMARK_OPACITY",
    "WATERMARK_ORIGIN",
    "WATERMARK_SCALE",
    "ZOO_FAMILIES",
    "ZOO_TEST_SETS",
    "ZooBenchmark",
    "ZooFamily",
    "frame_candidate_regions",
    "frame_layer",
    "frame_segments",
    "glyph_pattern",
    "make_zoo_benchmark",
    "marker_pattern",
    "texture_layer",
    "watermark_candidate_regions",
    "zoo_candidate_regions",
    "zoo_family",
    "zoo_images",
]
