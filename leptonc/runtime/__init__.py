"""Running graphs: the reference interpreter (and, later, compiled artifacts)."""
