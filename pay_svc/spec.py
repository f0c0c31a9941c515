from bread.pay.v1 import pay_pb2
from servicekit.spec import ServiceSpec

SPEC = ServiceSpec(
    name="pay", default_port=8082, api=pay_pb2.DESCRIPTOR.services_by_name["PaymentService"]
)
