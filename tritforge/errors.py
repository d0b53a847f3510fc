"""The one error type that user-facing code raises for bad input.

The CLI turns it into a one-line message and a non-zero exit code; anything else that
escapes is a bug.
"""


class TritforgeError(ValueError):
    """Bad input or an unsupported request; the message names the input and what was expected.

    A ``ValueError``, as the value checks of Amaranth's own library raise (components check
    their parameters before construction: a wrong type is a ``TypeError``, a value outside
    what the hardware supports this error)."""
