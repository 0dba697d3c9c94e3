"""Distribution strategies for training: one device, mirrored, multi-worker.

A multi-worker run needs `TF_CONFIG`; it comes from the environment (set by
a cluster manager) or from a config's `cluster` and `task_index`, so the
same YAML file can launch every worker.
"""

import json
import os

STRATEGIES = ("default", "mirrored", "multiworker")


def tf_config(cluster, task_index):
    """The `TF_CONFIG` value of one worker of a cluster.

    Args:
        cluster: dict with key `worker`: a list of `"host:port"` strings.
        task_index: int, this worker's position in that list.

    Returns:
        The dict to serialise into `TF_CONFIG`.

    Raises:
        ValueError: no worker list, or `task_index` outside it.

    Example:

    >>> tf_config({"worker": ["a:1", "b:2"]}, 1)["task"]
    {'type': 'worker', 'index': 1}
    """
    workers = (cluster or {}).get("worker")
    if not workers:
        raise ValueError("the config needs cluster.worker, a list of "
                         "host:port addresses.")
    if task_index is None or not 0 <= int(task_index) < len(workers):
        raise ValueError(f"task_index must lie in [0, {len(workers) - 1}]; "
                         f"received {task_index}.")
    return {"cluster": dict(cluster),
            "task": {"type": "worker", "index": int(task_index)}}


def make_strategy(name="default", cluster=None, task_index=None):
    """Creates a `tf.distribute` strategy by name.

    Args:
        name: `"default"` (the current strategy: one device),
            `"mirrored"` (all local GPUs, or the CPU) or `"multiworker"`
            (`MultiWorkerMirroredStrategy`).
        cluster: multi-worker only: `{"worker": [...]}`; sets `TF_CONFIG`
            when given, else `TF_CONFIG` must already be set.
        task_index: this worker's index in `cluster["worker"]`.

    Returns:
        A `tf.distribute.Strategy`.

    Example:

    >>> strategy = make_strategy("mirrored")  # doctest: +SKIP
    """
    import tensorflow as tf

    if name in (None, "default"):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if cluster:
            os.environ["TF_CONFIG"] = json.dumps(tf_config(cluster,
                                                           task_index))
        elif "TF_CONFIG" not in os.environ:
            raise ValueError("strategy 'multiworker' needs TF_CONFIG in the "
                             "environment or cluster and task_index in the "
                             "config.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {STRATEGIES}; received "
                     f"{name!r}.")
