"""The `default` pipeline: the cleanup passes, repeated until none changes the graph."""
from .registry import register_pipeline

register_pipeline("default", "the cleanup passes, repeated until none changes the graph",
                  "canonicalize,fold,cse,fold-batchnorm,dce", fixpoint=True)
