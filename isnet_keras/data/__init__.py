"""Data: MNIST and digits loaders, background-bias generators, user folders.

Everything here is NumPy and Pillow; TensorFlow is imported only by
`load_mnist_keras` (and `load_mnist(source="keras")`), which download MNIST.

Example:

>>> from isnet_keras.data import make_bias_benchmark
>>> bench = make_bias_benchmark("shapes", source="digits", limit_per_class=10)
>>> sorted(bench.test)
['biased', 'confounding', 'unbiased']
"""

from isnet_keras.data.bias import (
    SHAPE_TABLE,
    BiasBenchmark,
    BiasedImages,
    ImageSet,
    ShapeSpec,
    benchmark_test_sets,
    decoy_candidate_regions,
    decoy_mnist,
    foreground_masks,
    make_bias_benchmark,
    shape_pattern,
    shapes_candidate_regions,
    shapes_mnist,
)
from isnet_keras.data.digits import load_digits_28
from isnet_keras.data.folders import (
    FolderDataset,
    FolderDatasetError,
    FolderIndex,
    load_folder_dataset,
    scan_folder_dataset,
    write_folder_dataset,
)
from isnet_keras.data.masks import check_binary_mask, dilate_mask, resize_mask
from isnet_keras.data.mnist import (
    LoadedDigits,
    MnistNotFoundError,
    load_mnist,
    load_mnist_idx,
    load_mnist_keras,
    load_mnist_npz,
    read_idx,
)
from isnet_keras.data.splits import stratified_split
from isnet_keras.data.zoo import (
    ZOO_FAMILIES,
    ZOO_TEST_SETS,
    ZooBenchmark,
    make_zoo_benchmark,
    zoo_candidate_regions,
    zoo_images,
)

__all__ = [
    "SHAPE_TABLE",
    "BiasBenchmark",
    "BiasedImages",
    "FolderDataset",
    "FolderDatasetError",
    "FolderIndex",
    "ImageSet",
    "LoadedDigits",
    "MnistNotFoundError",
    "ShapeSpec",
    "benchmark_test_sets",
    "check_binary_mask",
    "decoy_candidate_regions",
    "decoy_mnist",
    "dilate_mask",
    "foreground_masks",
    "load_digits_28",
    "load_folder_dataset",
    "load_mnist",
    "load_mnist_idx",
    "load_mnist_keras",
    "load_mnist_npz",
    "make_bias_benchmark",
    "read_idx",
    "resize_mask",
    "scan_folder_dataset",
    "shape_pattern",
    "shapes_candidate_regions",
    "shapes_mnist",
    "stratified_split",
    "write_folder_dataset",
    "ZOO_FAMILIES",
    "ZOO_TEST_SETS",
    "ZooBenchmark",
    "make_zoo_benchmark",
    "zoo_candidate_regions",
    "zoo_images",
]
