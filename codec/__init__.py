"""Software codec: balanced-ternary quantization, packed trit format, integer golden reference.

Imports none of the other tritforge folders.
"""
