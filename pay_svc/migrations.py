"""pay_svc's schema history: a step for every change to models.py (docs/DESIGN.md,
Schema changes)."""

from pay_svc.models import Payment
from servicekit.migrations import Schema

SCHEMA = Schema("pay", models=[Payment], steps=[])
