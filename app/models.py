"""Every table, imported in one place so Alembic's autogenerate sees them all."""

from app.addresses.models import Building, Household, Person
from app.auth.models import ApiKey, Scope
from app.campaigns.models import Campaign, Membership, Role, User
from app.db import metadata
from app.precincts.models import Precinct

__all__ = ["ApiKey", "Building", "Campaign", "Household", "Membership", "Person", "Precinct", "Role", "Scope",
           "User", "metadata"]
