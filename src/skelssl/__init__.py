"""skelssl: self-supervised representation learning on human skeleton sequences.

Hi-TRS, ISC, Motion-Transformer and MAMP on one data layer (a packed memory-mapped store), one
training engine (Lightning Fabric) and the field's evaluation protocols.
"""

__version__ = "0.1.0"
