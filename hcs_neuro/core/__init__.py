"""The NumPy + standard-library core of hcs-neuro: errors, file input/output, resource limits,
and (as the package is layered) the model, quantisation, k-WTA and reference pieces.

Nothing here imports Brian2, PyTorch, matplotlib or Dask.
"""
