from bread.order.v1 import order_pb2
from servicekit.spec import ServiceSpec

SPEC = ServiceSpec.registered("order", order_pb2.DESCRIPTOR.services_by_name["OrderService"])
