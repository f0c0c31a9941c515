"""python -m pay_svc"""

from bread.pay.v1 import pay_pb2_grpc
from pay_svc.models import Payment
from pay_svc.payments import Payments
from pay_svc.servicer import PaymentServicer
from pay_svc.spec import SPEC
from servicekit.server import Runtime, Wiring, main


def wire(runtime: Runtime) -> Wiring:
    payments = Payments(runtime.db, runtime.outbox)
    return Wiring(
        servicers=[(pay_pb2_grpc.add_PaymentServiceServicer_to_server, PaymentServicer(payments))],
        handlers=payments.handlers(),
    )


if __name__ == "__main__":
    main(SPEC, [Payment], wire)
