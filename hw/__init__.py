"""Amaranth components of the accelerator (one per file) and the Verilog export.

``decoder.TritDecoder`` (packed beat -> trit planes, scale indices), ``groupdot.GroupDot``
(R x 16 lanes x d planes, multiply-free, on ``actmultiples.ActMultiples``: the shared
+-3**i x), ``scalemac.ScaleMac`` (codebook, one multiply per group, exact shift, row
accumulators), ``multiplier`` and ``actbuffer`` (the hard blocks, built from the
``primitives`` set: generic or ECP5), ``engine.GemvEngine`` (the top of hw/ENGINE.md),
``verilog`` (Verilog + JSON sidecar), ``simdriver`` (the engine and stream blocks under
Amaranth's simulator). Imports ``codec`` and ``hwconfig``, never ``sim``.
"""
