"""python -m pay_svc"""

from bread.admin.v1 import faults_pb2_grpc
from bread.pay.v1 import pay_pb2_grpc
from pay_svc.faults import FaultInjector
from pay_svc.migrations import SCHEMA
from pay_svc.payments import Payments
from pay_svc.servicer import PaymentServicer
from pay_svc.spec import SPEC
from servicekit.server import Runtime, Wiring, main


def wire(runtime: Runtime) -> Wiring:
    payments = Payments(runtime.db, runtime.outbox)
    settings = runtime.settings
    faults = FaultInjector(enabled=settings.fault_injection and settings.profile != "prod")
    return Wiring(
        servicers=[
            (pay_pb2_grpc.add_PaymentServiceServicer_to_server, PaymentServicer(payments, faults)),
            (faults_pb2_grpc.add_FaultInjectionServicer_to_server, faults),
        ],
        handlers=payments.handlers(),
    )


if __name__ == "__main__":
    main(SPEC, SCHEMA, wire)
