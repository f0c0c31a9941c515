from bread.pay.v1 import pay_pb2
from servicekit.spec import ServiceSpec

SPEC = ServiceSpec.registered("pay", pay_pb2.DESCRIPTOR.services_by_name["PaymentService"])
