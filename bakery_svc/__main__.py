"""python -m bakery_svc"""

from bakery_svc.migrations import SCHEMA
from bakery_svc.servicer import BakeryServicer
from bakery_svc.spec import SPEC
from bakery_svc.tickets import Tickets
from bread.bakery.v1 import bakery_pb2_grpc
from servicekit.server import Runtime, Wiring, main


def wire(runtime: Runtime) -> Wiring:
    tickets = Tickets(runtime.db, runtime.outbox)
    return Wiring(
        servicers=[(bakery_pb2_grpc.add_BakeryServiceServicer_to_server, BakeryServicer(tickets))],
        handlers=tickets.handlers(),
    )


if __name__ == "__main__":
    main(SPEC, SCHEMA, wire)
