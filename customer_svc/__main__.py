"""python -m customer_svc"""

from bread.customer.v1 import mypage_pb2_grpc
from customer_svc import projection, timeline
from customer_svc.migrations import SCHEMA
from customer_svc.projection import Mypages
from customer_svc.servicer import MypageServicer
from customer_svc.spec import SPEC
from customer_svc.timeline import Timelines
from servicekit.server import Runtime, Wiring, main


def wire(runtime: Runtime) -> Wiring:
    return Wiring(
        servicers=[
            (
                mypage_pb2_grpc.add_MypageServiceServicer_to_server,
                MypageServicer(Mypages(runtime.db), Timelines(runtime.db)),
            )
        ],
        handlers=projection.handlers(),
        on_applied=timeline.record,
    )


if __name__ == "__main__":
    main(SPEC, SCHEMA, wire)
