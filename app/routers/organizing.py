from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response, status

from app.auth.scopes import Scope
from app.auth.service import Access
from app.campaigns.roles import Role
from app.errors import Forbidden
from app.organizing import codes, holdings, launches, members
from app.organizing.schemas import (
    AssignmentCreate,
    AttendeeRead,
    CheckedIn,
    CheckIn,
    ClaimCreate,
    ClaimRead,
    EventCreate,
    EventRead,
    EventSummary,
    EventTurfRead,
    EventUpdate,
    HistoryRead,
    HolderRead,
    JoinCodeCreate,
    JoinCodeRead,
    Joined,
    JoinRequest,
)
from app.routers.deps import ALL_ROLES, FIELD_ROLES, Allow, SessionDep, SettingsDep
from app.routers.ratelimits import rate_limit
from app.values import Id

router = APIRouter(prefix="/v1/campaigns/{campaign_id}", tags=["organizing"])
public = APIRouter(prefix="/v1", tags=["organizing"])

field = Allow(*FIELD_ROLES)
field_readers = Allow(*FIELD_ROLES, scope=Scope.turfs_read)
any_member = Allow(*ALL_ROLES)
hosts = Allow(Role.admin, Role.organizer, Role.host)


def _user(access: Access) -> UUID:
    assert access.caller.user_id is not None
    return access.caller.user_id


@router.post("/turfs/{turf_id}/assignments", status_code=status.HTTP_201_CREATED, openapi_extra=field.openapi,
             responses={409: {"description": "The turf is archived."}})
async def assign_turf(turf_id: Id, body: AssignmentCreate, access: Annotated[Access, Depends(field)],
                      session: SessionDep) -> list[HolderRead]:
    """Give a turf to one or more members; returns everyone holding it."""
    rows = await holdings.assign(session, access.campaign_id, turf_id, body.user_ids, by=access.caller.user_id)
    return [HolderRead.model_validate(r, from_attributes=True) for r in rows]


@router.delete("/turfs/{turf_id}/assignments/{user_id}", status_code=status.HTTP_204_NO_CONTENT,
               openapi_extra=field.openapi)
async def take_back_turf(turf_id: Id, user_id: UUID, access: Annotated[Access, Depends(field)],
                         session: SessionDep) -> Response:
    """Take a turf back from a holder, however they came to hold it."""
    await holdings.unassign(session, access.campaign_id, turf_id, user_id, by=access.caller.user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/assignments", openapi_extra=field_readers.openapi)
async def list_assignments(access: Annotated[Access, Depends(field_readers)], session: SessionDep,
                           turf: Id | None = None, user: UUID | None = None) -> list[HolderRead]:
    """Who holds what: assignments, claims and event check-outs."""
    rows = await holdings.holders(session, access.campaign_id, turf_id=turf, user_id=user)
    holders = [HolderRead.model_validate(r, from_attributes=True) for r in rows]
    if access.role is None:
        # A third-party tool needs who holds what, not how to reach the volunteers.
        holders = [h.model_copy(update={"email": None}) for h in holders]
    return holders


@router.get("/turf-history", openapi_extra=field.openapi)
async def list_turf_history(access: Annotated[Access, Depends(field)], session: SessionDep,
                            turf: Id | None = None) -> list[HistoryRead]:
    """Every assignment, claim, release, lapse and check-out, oldest first."""
    rows = await holdings.history(session, access.campaign_id, turf_id=turf)
    return [HistoryRead.model_validate(r, from_attributes=True) for r in rows]


@router.post("/turfs:claim", openapi_extra=any_member.openapi,
             responses={201: {"model": ClaimRead, "description": "A turf newly claimed."},
                        200: {"description": "The open claim, claimed before."},
                        409: {"description": "Every turf is held or reserved right now."}})
async def claim_turf(body: ClaimCreate, response: Response, access: Annotated[Access, Depends(any_member)],
                     session: SessionDep) -> ClaimRead:
    """Claim the nearest free turf, the least worked first; a volunteer with an open claim gets it back."""
    claimed = await holdings.claim(session, access.campaign, _user(access), lon=body.lon, lat=body.lat)
    response.status_code = status.HTTP_201_CREATED if claimed.new else status.HTTP_200_OK
    return ClaimRead(turf_id=claimed.turf_id, name=claimed.name, precinct_id=claimed.precinct_code,
                     doors=claimed.doors, new=claimed.new)


@router.post("/turfs/{turf_id}/release", status_code=status.HTTP_204_NO_CONTENT, openapi_extra=any_member.openapi)
async def release_turf(turf_id: Id, access: Annotated[Access, Depends(any_member)], session: SessionDep) -> Response:
    """Give back a turf you hold."""
    await holdings.release(session, access.campaign_id, turf_id, _user(access))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _code_read(code: object) -> JoinCodeRead:
    return JoinCodeRead.model_validate(code, from_attributes=True)


@router.post("/join-codes", status_code=status.HTTP_201_CREATED, openapi_extra=hosts.openapi,
             responses={409: {"description": "The event is over or cancelled."}})
async def create_join_code(body: JoinCodeCreate, access: Annotated[Access, Depends(hosts)],
                           session: SessionDep) -> JoinCodeRead:
    """Make a code volunteers sign up with: the role it grants, expiry, uses, and optionally an event."""
    assert access.role is not None
    code = await codes.create_join_code(session, access.campaign_id, role=body.role, expires_at=body.expires_at,
                                        max_uses=body.max_uses, event_id=body.event_id, by=_user(access),
                                        by_role=access.role)
    return _code_read(code)


@router.get("/join-codes", openapi_extra=hosts.openapi)
async def list_join_codes(access: Annotated[Access, Depends(hosts)], session: SessionDep) -> list[JoinCodeRead]:
    """Join codes: all of them for organizers, a host's own for a host."""
    assert access.role is not None
    found = await codes.list_join_codes(session, access.campaign_id, by=_user(access), by_role=access.role)
    return [_code_read(c) for c in found]


@router.delete("/join-codes/{code_id}", openapi_extra=hosts.openapi)
async def revoke_join_code(code_id: Id, access: Annotated[Access, Depends(hosts)],
                           session: SessionDep) -> JoinCodeRead:
    """Revoke a join code: it stops working at once."""
    assert access.role is not None
    return _code_read(await codes.revoke_join_code(session, access.campaign_id, code_id, by=_user(access),
                                                   by_role=access.role))


@public.post("/join", status_code=status.HTTP_201_CREATED, responses={
    401: {"description": "The email has an account and the password is not its."},
    404: {"description": "No such join code."},
    409: {"description": "The code's event is over or cancelled."},
    410: {"description": "The code was revoked, has expired or is used up."}})
async def join_campaign(body: JoinRequest, request: Request, session: SessionDep, settings: SettingsDep) -> Joined:
    """Sign up with a join code (or add the campaign to an existing account, with its password); logs in.
    Rate-limited (429)."""
    assert settings.jwt_secret is not None
    await rate_limit(request, "join", account=body.email)
    joined = await members.join(session, code=body.code, name=body.name, email=body.email, password=body.password,
                                secret=settings.jwt_secret.get_secret_value(), minutes=settings.token_minutes,
                                refresh_days=settings.refresh_days)
    return Joined(access_token=joined.token, expires_in=settings.token_minutes * 60, refresh_token=joined.refresh_token,
                  refresh_expires_in=settings.refresh_days * 86400, campaign_id=joined.campaign.slug,
                  role=joined.role, event_id=joined.event_id, new_account=joined.new_account)


async def _event_read(session: SessionDep, event: object) -> EventRead:
    detail = await launches.event_detail(session, event)  # type: ignore[arg-type]
    return EventRead(**EventSummary.model_validate(event, from_attributes=True).model_dump(),
                     lon=event.lon, lat=event.lat, code=detail["code"],  # type: ignore[attr-defined]
                     turfs=[EventTurfRead.model_validate(t, from_attributes=True) for t in detail["turfs"]],
                     attendees=[AttendeeRead.model_validate(a, from_attributes=True) for a in detail["attendees"]])


@router.post("/events", status_code=status.HTTP_201_CREATED, openapi_extra=hosts.openapi,
             responses={409: {"description": "The host's other live events reserve every turf a host may."}})
async def create_event(body: EventCreate, access: Annotated[Access, Depends(hosts)], session: SessionDep,
                       settings: SettingsDep) -> EventRead:
    """Host a canvass launch: reserves the free turfs nearest the meeting point and makes its join code."""
    event = await launches.create_event(session, access.campaign_id, host=_user(access), title=body.title,
                                        starts_at=body.starts_at, ends_at=body.ends_at, lon=body.lon, lat=body.lat,
                                        capacity=body.capacity, turfs=body.turfs, role=access.role,
                                        max_hours=settings.event_max_hours,
                                        max_days_ahead=settings.event_max_days_ahead)
    return await _event_read(session, event)


@router.get("/events", openapi_extra=hosts.openapi)
async def list_events(access: Annotated[Access, Depends(hosts)], session: SessionDep) -> list[EventSummary]:
    """Events: all of them for organizers, a host's own for a host."""
    events = await launches.list_events(session, access.campaign_id, user=access.caller.user_id, role=access.role)
    return [EventSummary.model_validate(e, from_attributes=True) for e in events]


@router.get("/events/{event_id}", openapi_extra=hosts.openapi)
async def get_event(event_id: Id, access: Annotated[Access, Depends(hosts)], session: SessionDep) -> EventRead:
    """An event with its turf pool and attendees."""
    event = await launches.visible_event(session, access.campaign_id, event_id, user=access.caller.user_id,
                                         role=access.role)
    return await _event_read(session, event)


@router.patch("/events/{event_id}", openapi_extra=hosts.openapi,
              responses={409: {"description": "The event is over or cancelled."}})
async def update_event(event_id: Id, body: EventUpdate, access: Annotated[Access, Depends(hosts)],
                       session: SessionDep, settings: SettingsDep) -> EventRead:
    """Change an event's title, times, meeting point, capacity or pool size; its join code follows."""
    event = await launches.update_event(session, access.campaign_id, event_id, user=access.caller.user_id,
                                        role=access.role, title=body.title, starts_at=body.starts_at,
                                        ends_at=body.ends_at, lon=body.lon, lat=body.lat, capacity=body.capacity,
                                        turfs=body.turfs, max_hours=settings.event_max_hours,
                                        max_days_ahead=settings.event_max_days_ahead)
    return await _event_read(session, event)


@router.delete("/events/{event_id}", openapi_extra=hosts.openapi,
               responses={409: {"description": "The event is over or cancelled already."}})
async def cancel_event(event_id: Id, access: Annotated[Access, Depends(hosts)],
                       session: SessionDep) -> EventSummary:
    """Cancel an event: its turfs not handed out go back at once and its join codes stop working; turfs checked
    out stay with their holders."""
    event = await launches.cancel_event(session, access.campaign_id, event_id, user=access.caller.user_id,
                                        role=access.role)
    return EventSummary.model_validate(event, from_attributes=True)


@router.post("/events/{event_id}/check-ins", openapi_extra=any_member.openapi,
             responses={409: {"description": "The pool is out of turfs, or the event is over or cancelled."}})
async def check_in(event_id: Id, body: CheckIn, access: Annotated[Access, Depends(any_member)],
                   session: SessionDep) -> CheckedIn:
    """Check in at an event and get a turf from its pool; hosts check in others and pair them."""
    me = _user(access)
    attendee = body.user_id or me
    if attendee != me or body.pair_with is not None:
        # Only the event's host (or an organizer) checks in someone else, or pairs people.
        await launches.visible_event(session, access.campaign_id, event_id, user=me, role=access.role)
        if access.role not in (Role.admin, Role.organizer, Role.host):
            raise Forbidden("Only the host checks in other people or pairs them.")
    turf_id = await launches.check_in(session, access.campaign_id, event_id, attendee, by=me,
                                      pair_with=body.pair_with)
    return CheckedIn(user_id=attendee, turf_id=turf_id)
