"""Duties: the monthly TSR and EUSR with their status (operators), and webhook deliveries with
their failures, each of which can be tried again (the API's retry)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from gateway.api.accounts import RUNTIME
from gateway.api.console.pages import ConsoleError, render
from gateway.api.console.session import USER, ConsoleUser, pool_of, see_other
from gateway.duties import queries as duties_queries
from gateway.duties.reporting import due_date
from gateway.duties.states import ReportState
from gateway.webhooks import queries as webhook_queries
from gateway.webhooks.states import DeliveryState

__all__ = ["add_duty_routes"]

PAGE = 100


def _owner(user: ConsoleUser) -> webhook_queries.Owner:
    if user.is_operator:
        return webhook_queries.Owner("operator", user.principal.operator_id)
    return webhook_queries.Owner("company", user.principal.company_id)


def _delivery_id(request: web.Request) -> int:
    raw = request.match_info["delivery_id"]
    if not (raw.isascii() and raw.isdigit()) or int(raw) >= 2**63:
        raise ConsoleError(404, "no such delivery")
    return int(raw)


async def duties(request: web.Request) -> web.Response:
    user = request[USER]
    raw = request.query.get("status") or ""
    if raw and raw not in {str(s) for s in DeliveryState}:
        raise ConsoleError(400, f"no delivery status {raw}")
    reports = []
    if user.is_operator:
        today = datetime.now(UTC).date()
        for report in await duties_queries.list_reports(pool_of(request)):
            due = due_date(report.period_end)
            reports.append((report, due, report.state is not ReportState.SENT and today > due))
    page = await webhook_queries.list_deliveries(
        pool_of(request), _owner(user), status=DeliveryState(raw) if raw else None, limit=PAGE
    )
    hooks = {h.id: h for h in await webhook_queries.list_webhooks(pool_of(request), _owner(user))}
    return render(
        request, "duties.html", title="Duties", reports=reports, deliveries=page.items, hooks=hooks, status=raw,
        statuses=[str(s) for s in DeliveryState], may_retry=user.may("webhooks:write"),
    )  # fmt: skip


async def confirm_redelivery(request: web.Request) -> web.Response:
    user = request[USER]
    user.need("webhooks:write")
    delivery_id = _delivery_id(request)
    return render(
        request, "confirm.html", title=f"Deliver webhook event again? (delivery {delivery_id})",
        action=f"/console/webhook-deliveries/{delivery_id}/retry", cancel="/console/duties", button="Deliver again",
        text="The event is posted to the webhook again from now on, with a fresh retry window.",
    )  # fmt: skip


async def redeliver(request: web.Request) -> web.Response:
    user = request[USER]
    user.need("webhooks:write")
    runtime = request.config_dict[RUNTIME]
    now = datetime.now(UTC)
    give_up_at = now + timedelta(seconds=runtime.settings.webhook_give_up_after)
    delivery_id = _delivery_id(request)
    delivery = await webhook_queries.retry_delivery(pool_of(request), _owner(user), delivery_id, now, give_up_at)
    if delivery is None:
        raise ConsoleError(404, "no such delivery")
    return see_other("/console/duties#deliveries")


def add_duty_routes(app: web.Application) -> None:
    app.router.add_get("/duties", duties)
    app.router.add_get("/webhook-deliveries/{delivery_id}/retry", confirm_redelivery)
    app.router.add_post("/webhook-deliveries/{delivery_id}/retry", redeliver)
