from bread.customer.v1 import mypage_pb2
from servicekit.spec import ServiceSpec

SPEC = ServiceSpec(
    name="customer", default_port=8084, api=mypage_pb2.DESCRIPTOR.services_by_name["MypageService"]
)
