"""The one error type that user-facing code raises for bad input.

The CLI turns it into a one-line message and a non-zero exit code; anything else that
escapes is a bug.
"""


class TritforgeError(Exception):
    """Bad input or an unsupported request; the message names the input and what was expected."""
