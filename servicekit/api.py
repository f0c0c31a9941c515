"""The whole bread API, for server reflection.

Every service describes all of it, so `grpcurl list` and `describe` through
the gateway work whichever service answers the reflection stream.
"""

import importlib

from servicekit.registry import SERVICES

PUBLIC_SERVICES = [
    service.full_name
    for entry in SERVICES
    for service in importlib.import_module(entry.proto_module).DESCRIPTOR.services_by_name.values()
]
