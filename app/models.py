"""Every table, imported in one place so Alembic's autogenerate sees them all."""

from app.addresses.models import Building, Household, Person
from app.attributes.models import Attribute, AttributeValue, PersonTag, Tag
from app.audit.models import AuditEvent
from app.auth.models import ApiKey, LoginSession
from app.auth.scopes import Scope
from app.campaigns.models import Campaign, Membership, User
from app.campaigns.roles import Role
from app.db import metadata
from app.organizing.models import Event, EventAttendee, EventTurf, JoinCode, TurfHistory, TurfHolding
from app.precincts.models import Precinct
from app.scripts.models import Script, ScriptVersion
from app.streets.models import Street
from app.sync.models import DoorKnock, ResultTally
from app.turfs.models import Turf, TurfCut
from app.walklists.models import WalkStop
from app.webhooks.models import Webhook, WebhookDelivery

__all__ = [
           "ApiKey",
           "Attribute",
           "AttributeValue",
           "AuditEvent",
           "Building",
           "Campaign",
           "DoorKnock",
           "Event",
           "EventAttendee",
           "EventTurf",
           "Household",
           "JoinCode",
           "LoginSession",
           "Membership",
           "Person",
           "PersonTag",
           "Precinct",
           "ResultTally",
           "Role",
           "Scope",
           "Script",
           "ScriptVersion",
           "Street",
           "Tag",
           "Turf",
           "TurfCut",
           "TurfHistory",
           "TurfHolding",
           "User",
           "WalkStop",
           "Webhook",
           "WebhookDelivery",
           "metadata",
]
