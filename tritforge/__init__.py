"""tritforge: hardware co-design simulator and RTL generator for balanced-ternary LLMs.

The user-facing folders map under this one import package:
``codec/`` -> ``tritforge.codec``, ``hw/`` -> ``tritforge.hw``, ``sim/`` -> ``tritforge.sim``,
``fpga/`` -> ``tritforge.fpga``.
"""

__version__ = "0.1.0"
