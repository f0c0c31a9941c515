from bread.bakery.v1 import bakery_pb2
from servicekit.spec import ServiceSpec

SPEC = ServiceSpec(
    name="bakery", default_port=8083, api=bakery_pb2.DESCRIPTOR.services_by_name["BakeryService"]
)
