"""The data room's error (:class:`DataError`), in a module of its own so every data module can raise it."""
from __future__ import annotations

__all__ = ["DataError", "SKIP_HINT"]

#: what a user can do about one bad image or annotation, said at the end of a strict data set's error
SKIP_HINT = "fix the file, or set data.skip_bad_samples=true to leave such images out"


class DataError(ValueError):
    """Bad input data; the message names the file, image and annotation concerned (and says what to do)."""
