"""Errors whose message is fit to show a user and names the fix."""


class AfinaError(Exception):
    """A problem the user can act on; ``str(error)`` says what to do."""


class InputError(AfinaError):
    """The user's input was rejected (empty, too long, malformed file)."""


class ConfigError(AfinaError):
    """A setting is wrong or a service it names is unreachable."""


class NotFoundError(AfinaError):
    """A named thing (user, conversation, backend) does not exist."""


class NotAllowedError(AfinaError):
    """The user's role does not allow this (e.g. an agent switching the backend)."""


class DatabaseUnavailable(AfinaError):
    """The database did not answer, even after a retry; the turn is kept to be written later."""
