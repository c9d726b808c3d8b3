"""User-facing errors of the InstantID pack."""


class InstantIDError(Exception):
    """An error the user can fix; the message says what is wrong and what to do."""
