"""The `default` pipeline: the cleanup passes, repeated until none changes the graph."""
from .registry import register_pipeline

register_pipeline("default", "canonicalize, fold, cse, fold-batchnorm and dce, repeated to a fixpoint",
                  "canonicalize,fold,cse,fold-batchnorm,dce", fixpoint=True)
