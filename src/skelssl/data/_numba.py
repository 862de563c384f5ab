"""Optional compiled code: the data layer's numba kernels, loaded only where numba is installed.

numba comes with the ``[fast]`` extra. Without it (or with ``SKELSSL_NUMBA=0`` in the environment)
every caller uses its numpy code instead; both give the same results (see each kernel module for
the one documented difference). Kernel modules are imported on first use, not with the package:
importing numba takes about 0.3 s.
"""

from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType

__all__ = ["kernels"]


@functools.cache
def kernels(module: str) -> ModuleType | None:
    """The kernel module ``module`` (e.g. ``"skelssl.data._agcn_compiled"``), or ``None`` when
    numba is not installed or ``SKELSSL_NUMBA=0`` is set."""
    if os.environ.get("SKELSSL_NUMBA", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name not in ("numba", "llvmlite"):
            raise  # a real error in the kernel module, not a missing extra
        return None
