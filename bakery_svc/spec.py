from bread.bakery.v1 import bakery_pb2
from servicekit.spec import ServiceSpec

SPEC = ServiceSpec.registered("bakery", bakery_pb2.DESCRIPTOR.services_by_name["BakeryService"])
