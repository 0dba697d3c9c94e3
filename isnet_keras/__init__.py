"""isnet-keras: ISNet (LRP heatmap-guided training) for Keras 3.

    import isnet_keras as isn
    isnet = isn.build_isnet(classifier)   # Selective, P 0.95, deep supervision
    isnet.compile()                        # Adam 3e-3, global clipping at 0.3
    isnet.fit(images, {"label": labels, "mask": masks}, epochs=10)
    heatmaps = isn.explain(isnet.deploy_model, images[:8])
    print(isn.audit(isnet, images, labels, masks).verdict)

Names are imported on first use, so the command line starts without loading
TensorFlow.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "build_isnet": "isnet_keras.isnet",
    "ISNet": "isnet_keras.isnet",
    "explain": "isnet_keras.lrp.explain",
    "Explainer": "isnet_keras.lrp.explain",
    "LRPGraph": "isnet_keras.lrp.graph",
    "Composite": "isnet_keras.lrp.composites",
    "UnsupportedLayerError": "isnet_keras.errors",
    "TrainingDivergedError": "isnet_keras.errors",
    "GWRPHeatmapLoss": "isnet_keras.losses",
    "VarianceHeatmapLoss": "isnet_keras.losses",
    "HeatmapWeightSchedule": "isnet_keras.callbacks",
    "AutoTuneForegroundBounds": "isnet_keras.callbacks",
    "apply_foreground_bounds": "isnet_keras.callbacks",
    "PreciseBatchNorm": "isnet_keras.callbacks",
    "CosineLearningRate": "isnet_keras.callbacks",
    "StopOnDivergence": "isnet_keras.callbacks",
    "PlainClassifier": "isnet_keras.baselines",
    "RRRClassifier": "isnet_keras.baselines",
    "MaskedInputClassifier": "isnet_keras.baselines",
    "plot_heatmaps": "isnet_keras.viz",
    "evaluate_classifier": "isnet_keras.evaluate",
    "audit": "isnet_keras.shortcut_audit",
    "write_audit": "isnet_keras.audit_report",
    "AuditResult": "isnet_keras.shortcut_audit",
    "losses": None,
    "metrics": None,
    "data": None,
    "hub": None,
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'isnet_keras' has no attribute {name!r}")
    module_name = _EXPORTS[name]
    if module_name is None:
        return importlib.import_module(f"isnet_keras.{name}")
    return getattr(importlib.import_module(module_name), name)
