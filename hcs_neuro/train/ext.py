"""Optional compiled k-WTA for training (``hcs_neuro/train/csrc/kwta.cpp``), built on first use.

The pure-PyTorch k-WTA of :mod:`hcs_neuro.train` needs a ``topk`` and about a dozen
element-wise passes per layer and step; the extension does the selection, the winner mask and the
window surrogate in one pass over the channels of every location, with bit-identical results
(``tests/test_kwta_ext.py``). It is compiled once with PyTorch's C++ extension builder (needs a C++
compiler, the Python headers and ``ninja``) into ``$TORCH_EXTENSIONS_DIR`` (default
``~/.cache/torch_extensions``); this takes about a minute the first time. It is built for the CPU
it runs on (``-march=native``), one build per CPU type.

If it cannot be built, training falls back to the PyTorch path with one warning. Set
``HCS_NEURO_KWTA_EXT=0`` to never use it (``=1``: fail loudly instead of falling back).
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import warnings
from pathlib import Path

_SOURCE = Path(__file__).with_name("csrc") / "kwta.cpp"
_STATE: dict = {}


def _put_ninja_on_path() -> None:
    """PyTorch runs ``ninja`` from PATH; the pip-installed one lives in the virtual environment,
    which is not on PATH when ``.venv/bin/hcs-neuro`` or ``.venv/bin/python`` is run directly."""

    dirs = []
    try:
        import ninja

        dirs.append(str(getattr(ninja, "BIN_DIR", "")))
    except ImportError:
        pass
    dirs.append(str(Path(sys.executable).parent))
    path = os.environ.get("PATH", "").split(os.pathsep)
    for d in dirs:
        if d and d not in path and (Path(d) / "ninja").exists():
            os.environ["PATH"] = os.pathsep.join([d, *path])
            return


def _cpu_flags() -> str:
    """The CPU's instruction-set flags (Linux), or the machine name elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass

    return platform.machine() + platform.processor()


def load():
    """The compiled module, or None (disabled, or the build failed: warned once)."""
    if "module" in _STATE:
        return _STATE["module"]
    mode = os.environ.get("HCS_NEURO_KWTA_EXT", "auto").strip().lower()
    module = None
    if mode not in ("0", "off", "false", "no"):
        try:
            from torch.utils.cpp_extension import load as build

            _put_ninja_on_path()

            import torch

            # -march=native: one build per CPU type (a home folder shared by the nodes of a
            # cluster must not hand an AVX-512 build to an older node), source and PyTorch version
            tag = hashlib.sha1(_SOURCE.read_bytes() + _cpu_flags().encode() + torch.__version__.encode())
            tag = tag.hexdigest()[:10]
            module = build(name=f"hcs_neuro_kwta_{tag}", sources=[str(_SOURCE)],
                           extra_cflags=["-O3", "-march=native", "-fopenmp", "-ffp-contract=off"],
                           extra_ldflags=["-fopenmp"], verbose=False)
        except Exception as exc:  # compiler, headers or ninja missing
            if mode in ("1", "on", "true", "yes"):
                raise
            warnings.warn(f"hcs_neuro: compiled k-WTA unavailable ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}); using the slower PyTorch path",
                          RuntimeWarning, stacklevel=2)
            module = None
    _STATE["module"] = module
    return module
