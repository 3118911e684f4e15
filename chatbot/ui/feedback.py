"""PUT/DELETE /chat/feedback served by the host app: a rating only on one's own answers.

Chainlit's own routes turn every data-layer refusal into a 500; these answer 404 for an answer
that is missing or someone else's (the data layer refuses either way)."""

from __future__ import annotations

from typing import Annotated, Any

from chainlit.auth import get_current_user
from chainlit.types import DeleteFeedbackRequest, UpdateFeedbackRequest
from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse

from chatbot.errors import NotFoundError
from chatbot.ui.datalayer import rate, unrate
from chatbot.ui.mount import PATH

router = APIRouter(prefix=PATH, include_in_schema=False)
CurrentUser = Annotated[Any, Depends(get_current_user)]


def _user_id(user: Any) -> int:
    """The database id of the logged-in user (Afina's cookie check returns it as ``id``)."""
    try:
        return int(user.id)
    except (AttributeError, TypeError, ValueError):
        raise HTTPException(status_code=401, detail="log in first") from None


@router.put("/feedback")
async def update_feedback(update: UpdateFeedbackRequest, user: CurrentUser) -> JSONResponse:
    """Rate an answer of one's own (thumbs up/down and a comment)."""
    try:
        feedback_id = await rate(update.feedback, _user_id(user))
    except NotFoundError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return JSONResponse({"success": True, "feedbackId": feedback_id})


@router.delete("/feedback")
async def delete_feedback(payload: DeleteFeedbackRequest, user: CurrentUser) -> JSONResponse:
    """Remove one's own rating of one's own answer."""
    try:
        await unrate(payload.feedbackId, _user_id(user))
    except NotFoundError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return JSONResponse({"success": True})
