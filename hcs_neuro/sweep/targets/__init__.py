"""The built-in sweep targets, one module per kind, imported when a spec first names the kind."""

#: Built-in target kinds and the module that registers each.
BUILTIN_TARGETS = {
    "python": "hcs_neuro.sweep.targets.python",
    "circuit": "hcs_neuro.sweep.targets.circuit",
    "network": "hcs_neuro.sweep.targets.network",
}
