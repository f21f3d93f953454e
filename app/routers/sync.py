from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from app.auth.service import Access
from app.errors import Invalid, TooLarge
from app.routers.deps import ALL_ROLES, Allow, SessionDep
from app.sync import service as sync
from app.sync.schemas import MAX_BYTES, MAX_KNOCKS, SyncEnvelope, SyncResult

router = APIRouter(prefix="/v1/campaigns/{campaign_id}", tags=["sync"])

# Members who knock doors; API keys don't.
members = Allow(*ALL_ROLES)

# The body is read by hand (its size first, then each knock on its own), so the contract states it here: the app
# adds SyncBatch to the contract's schemas (app/main.py).
BATCH_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/SyncBatch"}}}}}


@router.post("/sync", openapi_extra={**members.openapi, **BATCH_SCHEMA}, response_model=SyncResult,
             responses={413: {"description": f"Over {MAX_KNOCKS} knocks or {MAX_BYTES} bytes: send smaller batches."}})
async def sync_knocks(request: Request, access: Annotated[Access, Depends(members)],
                      session: SessionDep) -> Response:
    """Upload door knocks made offline. Each knock comes back `accepted` (stored now), `duplicate` (stored
    before, identical: resending is always safe) or `rejected` with a problem naming its field; one bad knock
    never stops the others. A batch answered is committed; a batch not answered may be sent again whole."""
    body = await request.body()
    if len(body) > MAX_BYTES:
        raise TooLarge(f"A batch holds at most {MAX_BYTES} bytes; send smaller batches.", limit=MAX_BYTES)
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"the body is not JSON: {exc}", field="body") from exc
    if isinstance(raw, dict) and isinstance(raw.get("knocks"), list) and len(raw["knocks"]) > MAX_KNOCKS:
        raise TooLarge(f"A batch holds at most {MAX_KNOCKS} knocks; send smaller batches.", limit=MAX_KNOCKS)
    try:
        batch = SyncEnvelope.model_validate(raw)
    except ValidationError as exc:
        errors = [{"field": ".".join(["body", *(str(p) for p in e["loc"])]), "message": e["msg"]}
                  for e in exc.errors(include_input=False)]
        raise Invalid("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors) from exc
    # Written straight from the service's dict: a batch's answer lists every knock, and phones sync all evening.
    return Response(orjson.dumps(await sync.sync_batch(session, access, batch)), media_type="application/json")
