"""bakery_svc's schema history: a step for every change to models.py (docs/DESIGN.md,
Schema changes)."""

from bakery_svc.models import Ticket
from servicekit.migrations import Schema

SCHEMA = Schema("bakery", models=[Ticket], steps=[])
