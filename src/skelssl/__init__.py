"""skelssl: self-supervised representation learning on human skeleton sequences.

Hi-TRS, ISC, Motion-Transformer and MAMP on one data layer (a packed memory-mapped store), one
training engine (Lightning Fabric) and the field's evaluation protocols.

The Python entry point for using a trained encoder::

    import skelssl
    enc = skelssl.load_encoder("runs/isc-nucla")   # run folder or encoder.safetensors
    z = enc.embed(clips)                           # (N, D) features, through the run's test-time input

(:func:`skelssl.jobs.embed.load_encoder`; imported on first use, so ``import skelssl`` stays cheap.)
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_encoder", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "load_encoder":
        from skelssl.jobs.embed import load_encoder

        return load_encoder
    raise AttributeError(f"module 'skelssl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
