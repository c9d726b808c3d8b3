"""User-facing errors of the InstantID pack."""


class InstantIDError(Exception):
    """An error the user can fix; the message says what is wrong and what to do."""


def problem_of(check, *args) -> str | None:
    """What `check(*args)` finds wrong (its InstantIDError's message), or None when it passes: for the checks
    ComfyUI runs on a prompt before it starts."""
    try:
        check(*args)
    except InstantIDError as e:
        return str(e)
    return None
