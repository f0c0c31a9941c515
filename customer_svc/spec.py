from bread.customer.v1 import mypage_pb2
from servicekit.spec import ServiceSpec

SPEC = ServiceSpec.registered("customer", mypage_pb2.DESCRIPTOR.services_by_name["MypageService"])
