"""dbcourse: the helper package of the course "Databases from Python".

Notebooks start with one call, :func:`dbcourse.setup`, which checks that the servers the
chapter needs are up and gives the notebook a fresh namespace of its own (a database, a
MongoDB database, a Redis key prefix, an SQLite folder) with the chapter's data loaded.
"""

from .config import get_settings
from .errors import BadParameter, CourseError, DatasetError, ServiceUnavailable

__all__ = ["get_settings", "setup", "CourseError", "ServiceUnavailable", "BadParameter", "DatasetError"]


def setup(*args, **kwargs):
    """Prepare a notebook: see :func:`dbcourse.workspace.setup`."""
    from .workspace import setup as _setup

    return _setup(*args, **kwargs)
