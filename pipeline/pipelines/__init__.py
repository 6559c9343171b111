"""Built-in pipelines; each module registers itself with `pipeline.registry`."""
