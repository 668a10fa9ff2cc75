"""The built-in sweep targets, one module per kind (``python``, ``circuit``, ``network``), imported
by :func:`hcs_neuro.sweep.spec.get_target` the first time a spec names the kind."""
