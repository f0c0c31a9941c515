"""Who is calling: the identity the edge verified, as trusted request metadata.

Envoy's jwt_authn filter verifies the caller's token and copies its subject and
role into these headers, after removing any a client sent itself; only Envoy
reaches the services (loopback locally, NetworkPolicies in Kubernetes), so a
service believes them. Rules on top of that are the services' own: a customer
sees and changes only their own orders, payments and Mypage rows (others' are
NOT_FOUND, so ids do not leak), a baker works the bakery, an operator reads
everything and may act for someone else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import grpc

from servicekit.errors import PermissionDenied, Unauthenticated
from servicekit.metadata import request_header

SUBJECT_HEADER = "x-bread-subject"
ROLE_HEADER = "x-bread-role"


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    BAKER = "baker"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Caller:
    subject: str
    role: Role

    @property
    def sees_everything(self) -> bool:
        return self.role == Role.OPERATOR

    def require(self, *roles: Role) -> Caller:
        if self.role not in roles:
            raise PermissionDenied(f"a {self.role} may not do this")
        return self

    def owns(self, customer_id: str) -> bool:
        return self.sees_everything or customer_id == self.subject

    def customer_filter(self, requested: str) -> str:
        """The customer a list is restricted to: a customer's own rows only, an
        operator's choice ("" for everyone's)."""
        if self.sees_everything:
            return requested
        if requested and requested != self.subject:
            raise PermissionDenied("customers list only their own")
        return self.subject

    def acting_for(self, requested: str) -> str:
        """Whose order this is: the caller's own, or, for an operator, the one named."""
        if self.sees_everything and requested:
            return requested
        if requested and requested != self.subject:
            raise PermissionDenied("only an operator acts for another customer")
        return self.subject


def caller(context: grpc.aio.ServicerContext) -> Caller:
    """The verified caller; UNAUTHENTICATED without one."""
    subject, role = request_header(context, SUBJECT_HEADER), request_header(context, ROLE_HEADER)
    if not subject or role not in ROLES:
        raise Unauthenticated("a signed-in caller is required")
    return Caller(subject, Role(role))


ROLES = frozenset(role.value for role in Role)
