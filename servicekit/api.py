"""The whole bread API, for server reflection.

Every service describes all of it, so `grpcurl list` and `describe` through
the gateway work whichever service answers the reflection stream.
"""

from bread.bakery.v1 import bakery_pb2
from bread.customer.v1 import mypage_pb2
from bread.order.v1 import order_pb2
from bread.pay.v1 import pay_pb2

PUBLIC_SERVICES = [
    service.full_name
    for module in (order_pb2, pay_pb2, bakery_pb2, mypage_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
]
