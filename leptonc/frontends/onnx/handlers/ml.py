"""ai.onnx.ml ops that are tensor arithmetic: Binarizer, ArrayFeatureExtractor."""
from __future__ import annotations

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
