"""customer_svc's schema history: a step for every change to models.py (docs/DESIGN.md,
Schema changes)."""

from customer_svc.models import Mypage
from servicekit.migrations import Schema

SCHEMA = Schema("customer", models=[Mypage], steps=[])
