"""stroketrial: acute ischemic stroke trials from protocol to primary analysis."""

__version__ = "0.1.0"


class InputError(ValueError):
    """Bad input from a person or a file: the message names the field, the value and what is allowed.

    Every error the platform raises for bad input derives from this; the command line ends it
    as one line and exit code 2. Any other exception is a bug and keeps its traceback.
    """
