"""Free TCP ports on the loopback interface for the servers tests start.

Ports come from below the kernel's ephemeral range. A port handed out here may stay unbound
for a while (a rollout's free slot waits until a new replica starts in it); the kernel never
gives such a port to a port-0 bind (Envoy's listeners in tests) nor to an outgoing
connection, so nothing else takes it meanwhile.
"""

import random
import socket
from pathlib import Path

LOWEST = 20000
_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port nothing listens on, not handed out before in this process."""
    high = _ephemeral_start()
    for _ in range(1000):
        port = random.randrange(LOWEST, high)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port between {LOWEST} and {high}")
