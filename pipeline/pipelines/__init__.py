"""Built-in pipelines; each module registers itself with `podfleet.pipeline.registry`."""
