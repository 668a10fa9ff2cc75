"""hcs-neuro: hypercolumn-sparsified (k-WTA) low-precision networks, trained rate-based and
simulated as spiking networks on Brian2.

Nothing heavy is imported here: Brian2 and PyTorch are imported only by the modules that need
them (``hcs_neuro.brian.hypercolumn``, ``hcs_neuro.train``, ...).
"""

__all__ = ["__version__", "HCSError"]
__version__ = "0.1.0"

from hcs_neuro.core.errors import HCSError  # noqa: E402  (lightweight)
