"""ai.onnx.ml ops: Binarizer, ArrayFeatureExtractor (tensor arithmetic) and TreeEnsemble."""
from __future__ import annotations

import numpy as np

from ....ir import dims as D
from ..registry import onnx_op

ML = "ai.onnx.ml"


@onnx_op("Binarizer", domain=ML)
def binarizer(cx):
    b, x = cx.b, cx.x(0)
    hit = b.op("greater", x, b.scalar(cx.a("threshold", 0.0), x.dtype))
    return b.op("where", hit, b.scalar(1, x.dtype), b.scalar(0, x.dtype))


@onnx_op("ArrayFeatureExtractor", domain=ML)
def array_feature_extractor(cx):
    b, x, idx = cx.b, cx.x(0), cx.x(1)
    n = D.product(idx.shape)
    flat = b.reshape(idx, (n,)) if idx.type.rank != 1 else idx
    y = b.op("gather", x, flat, axis=x.type.rank - 1)
    return b.reshape(y, (1, n)) if x.type.rank == 1 else y


@onnx_op("TreeEnsemble", domain=ML)
def tree_ensemble(cx):
    def floats(name):
        v = cx.a(name)
        return () if v is None else tuple(float(f) for f in np.asarray(v).reshape(-1))

    def ints(name):
        v = cx.a(name)
        return () if v is None else tuple(int(i) for i in v)

    return cx.b.op("tree_ensemble", cx.x(0), nodes_splits=floats("nodes_splits"),
                   nodes_featureids=ints("nodes_featureids"), nodes_modes=tuple(int(m) for m in cx.a("nodes_modes")),
                   nodes_truenodeids=ints("nodes_truenodeids"), nodes_falsenodeids=ints("nodes_falsenodeids"),
                   nodes_trueleafs=ints("nodes_trueleafs"), nodes_falseleafs=ints("nodes_falseleafs"),
                   leaf_targetids=ints("leaf_targetids"), leaf_weights=floats("leaf_weights"),
                   tree_roots=ints("tree_roots"), n_targets=cx.a("n_targets"),
                   aggregate_function=cx.a("aggregate_function", 1), post_transform=cx.a("post_transform", 0),
                   missing_tracks_true=ints("nodes_missing_value_tracks_true"),
                   membership_values=floats("membership_values"))
