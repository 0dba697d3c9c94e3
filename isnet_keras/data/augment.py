"""Joint image + mask augmentation with Keras preprocessing layers.

Geometric changes (flips, rotations, translations, zoom) must move the mask
with the image, or the heatmap loss would penalise the foreground. Keras'
random image layers take `{"images", "segmentation_masks"}` and apply one
random transformation to both (masks by nearest neighbour); this layer
chains them, re-binarises the masks and adds photometric changes
(brightness, contrast) to the images only.

Imports TensorFlow through Keras: not re-exported by `isnet_keras.data`,
which stays NumPy and Pillow only.
"""

import keras

FLIP_MODES = ("none", "horizontal", "vertical", "horizontal_and_vertical")


@keras.saving.register_keras_serializable(package="isnet_keras")
class JointAugmentation(keras.layers.Layer):
    """Random geometric changes to images and masks together, photometric
    changes to images alone; identity outside training.

    Args:
        flip: One of `FLIP_MODES`. Defaults to `"none"`.
        rotation: float in [0, 0.5]. Largest rotation as a fraction of a
            full turn (0.05 = +-18 degrees). Defaults to 0.
        translation: float in [0, 1). Largest shift as a fraction of the
            height and of the width. Defaults to 0.
        zoom: float in [0, 1). Largest zoom in or out as a fraction.
            Defaults to 0.
        brightness: float in [0, 1]. Largest brightness shift as a fraction
            of the [0, 1] range. Defaults to 0.
        contrast: float in [0, 1]. Largest contrast factor change.
            Defaults to 0.
        interpolation: `"bilinear"` (default) or `"nearest"`, for images;
            masks always use nearest neighbour.
        seed: int or None. Seeds the random transformations.

    Call arguments:
        images: float `(B, H, W, C)` in [0, 1].
        masks: float `(B, H, W, 1)`, 0/1.
        training: bool. Augments only when True.

    Returns:
        `(images, masks)`: images clipped to [0, 1], masks exactly 0/1.
        Pixels moved in from outside the image are 0 in both (background).

    Example:

    >>> augment = JointAugmentation(flip="horizontal", rotation=0.05)
    >>> images, masks = augment(images, masks, training=True)  # doctest: +SKIP
    """

    def __init__(self, flip="none", rotation=0.0, translation=0.0, zoom=0.0,
                 brightness=0.0, contrast=0.0, interpolation="bilinear",
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        if flip not in FLIP_MODES:
            raise ValueError(f"flip must be one of {FLIP_MODES}; received "
                             f"{flip!r}.")
        for name, value, top in (("rotation", rotation, 0.5),
                                 ("translation", translation, 1.0),
                                 ("zoom", zoom, 1.0),
                                 ("brightness", brightness, 1.0),
                                 ("contrast", contrast, 1.0)):
            if not 0.0 <= float(value) <= top:
                raise ValueError(f"{name} must lie in [0, {top}]; received "
                                 f"{value}.")
        self.flip = flip
        self.rotation = float(rotation)
        self.translation = float(translation)
        self.zoom = float(zoom)
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.interpolation = interpolation
        self.seed = seed

        def layer_seed(step):
            # Distinct seeds, so that no two layers draw the same numbers.
            return None if seed is None else int(seed) + step

        # fill 0 = background: a pixel moved in from outside is not object.
        fill = {"fill_mode": "constant", "fill_value": 0.0,
                "interpolation": interpolation}
        self.geometric = []
        if flip != "none":
            self.geometric.append(keras.layers.RandomFlip(
                flip, seed=layer_seed(0)))
        if self.rotation:
            self.geometric.append(keras.layers.RandomRotation(
                self.rotation, seed=layer_seed(1), **fill))
        if self.translation:
            self.geometric.append(keras.layers.RandomTranslation(
                self.translation, self.translation, seed=layer_seed(2),
                **fill))
        if self.zoom:
            self.geometric.append(keras.layers.RandomZoom(
                self.zoom, seed=layer_seed(3), **fill))
        self.photometric = []
        if self.brightness:
            self.photometric.append(keras.layers.RandomBrightness(
                self.brightness, value_range=(0.0, 1.0),
                seed=layer_seed(4)))
        if self.contrast:
            self.photometric.append(keras.layers.RandomContrast(
                self.contrast, value_range=(0.0, 1.0), seed=layer_seed(5)))

    @property
    def is_identity(self):
        """True when no transformation is configured."""
        return not (self.geometric or self.photometric)

    def build(self, images_shape, masks_shape=None):
        # The wrapped layers own no weights and build on first call.
        self.built = True

    def call(self, images, masks, training=None):
        if not training or self.is_identity:
            return images, masks
        pair = {"images": images, "segmentation_masks": masks}
        for layer in self.geometric:
            pair = layer(pair, training=True)
        images = pair["images"]
        # Nearest neighbour keeps masks binary; rounding guards the dtype
        # casts and fill values of future layer versions.
        masks = keras.ops.cast(pair["segmentation_masks"] > 0.5, masks.dtype)
        for layer in self.photometric:
            images = layer(images, training=True)
        return keras.ops.clip(images, 0.0, 1.0), masks

    def compute_output_shape(self, images_shape, masks_shape):
        return images_shape, masks_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "flip": self.flip, "rotation": self.rotation,
            "translation": self.translation, "zoom": self.zoom,
            "brightness": self.brightness, "contrast": self.contrast,
            "interpolation": self.interpolation, "seed": self.seed,
        })
        return config
