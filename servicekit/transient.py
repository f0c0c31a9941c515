"""Which failures are the infrastructure's and pass by themselves.

A database that restarts, a connection the broker closed, a lock held by
another replica: retrying later succeeds without anyone changing anything.
Everything else (an undecodable message, a bug, a queue declared with other
arguments) fails the same way every time, and retrying only hides it.
"""

from __future__ import annotations

import aiormq
import peewee

TRANSIENT: tuple[type[BaseException], ...] = (
    # peewee wraps the driver's connection errors, lock timeouts, "database
    # is locked" and "server has gone away" in these two.
    peewee.OperationalError,
    peewee.InterfaceError,
    # The broker went away, closed a channel, or refused a publish (a full queue).
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    TimeoutError,
)
# The broker's answers that no retry changes.
PERMANENT: tuple[type[BaseException], ...] = (
    aiormq.exceptions.ChannelPreconditionFailed,
    aiormq.exceptions.ChannelAccessRefused,
    aiormq.exceptions.AuthenticationError,
)


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT) and not isinstance(error, PERMANENT)
