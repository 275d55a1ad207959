"""Companies and their receiving profiles: list, create and verify (operators), register
profiles, and where each participant stands in our SMP and in the SML (pending with the SML's
reason and the next try, active, failed)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from aiohttp import web

import smp
from gateway.api.accounts import RUNTIME
from gateway.api.console.pages import ConsoleError, render
from gateway.api.console.session import USER, ConsoleUser, pool_of, see_other
from gateway.directory import queries as directory_queries
from gateway.directory import registration
from gateway.directory.errors import Conflict, Invalid, NotFound
from gateway.directory.profiles import DEFAULT_VERSION
from gateway.directory.queries import Company, Profile
from gateway.directory.states import ProfileStatus
from gateway.security.credentials import create_api_key

__all__ = ["add_company_routes"]

VERSIONS = sorted({version for _, version in smp.PROFILES})
PROFILE_NAMES = sorted({name for name, _ in smp.PROFILES})


@dataclass(frozen=True)
class Participant:
    """A participant a company receives as: whether our SMP publishes it, and its profiles."""

    id: str
    smp_document_types: int | None  # None: not published (the company is not verified)
    profiles: list[Profile]


def _company_id(request: web.Request, user: ConsoleUser) -> uuid.UUID:
    try:
        company_id = uuid.UUID(request.match_info["company_id"])
    except ValueError:
        raise ConsoleError(404, "no such company") from None
    if not user.sees(company_id):
        raise ConsoleError(404, "no such company")
    return company_id


async def _visible(request: web.Request, user: ConsoleUser) -> list[Company]:
    pool = pool_of(request)
    if user.is_operator:
        return await directory_queries.companies_of_operator(pool, user.principal.operator_id)
    own = await directory_queries.company(pool, user.principal.company_id)
    return [] if own is None else [own]


async def list_companies(request: web.Request) -> web.Response:
    user = request[USER]
    pool = pool_of(request)
    companies = await _visible(request, user)
    profiles = {c.id: await directory_queries.company_profiles(pool, c.id) for c in companies}
    return render(request, "companies.html", title="Companies", companies=companies, profiles=profiles)


async def create_company(request: web.Request) -> web.Response:
    """A new company of this operator; its first API key is shown once, on the page answering."""
    user = request[USER]
    user.need_operator()
    form = await request.post()
    name, country = str(form.get("name") or "").strip(), str(form.get("country") or "").strip().upper()
    business_id = str(form.get("business_id") or "").strip()
    if not name or not business_id:
        raise ConsoleError(400, "name and business id are required")
    if len(country) != 2 or not country.isalpha():
        raise ConsoleError(400, "country is an ISO 3166 alpha-2 code, such as NO")
    pool = pool_of(request)
    async with pool.acquire() as conn, conn.transaction():
        try:
            company = await directory_queries.create_company(
                conn, name=name, country=country, business_id=business_id, operator_id=user.principal.operator_id
            )
        except Conflict as exc:
            raise ConsoleError(409, str(exc)) from None
        _, secret = await create_api_key(conn, company_id=company.id, label="initial")
    title = f"{company.name} created"
    return render(request, "created.html", http_status=201, title=title, company=company, secret=secret)


async def company_page(request: web.Request) -> web.Response:
    user = request[USER]
    company_id = _company_id(request, user)
    pool = pool_of(request)
    company = await directory_queries.company(pool, company_id)
    if company is None:
        raise ConsoleError(404, "no such company")
    profiles = await directory_queries.company_profiles(pool, company_id)
    by_id: dict[str, list[Profile]] = {}
    for profile in profiles:
        if profile.status is not ProfileStatus.REMOVED:
            by_id.setdefault(f"{profile.scheme}::{profile.value}", []).append(profile)
    participants = []
    for pid, rows in by_id.items():
        services = await directory_queries.participant_services(pool, rows[0].scheme, rows[0].value)
        participants.append(Participant(pid, None if services is None else len(services), rows))
    return render(
        request, "company.html", title=company.name, company=company, participants=participants,
        removed=[p for p in profiles if p.status is ProfileStatus.REMOVED], profile_names=PROFILE_NAMES,
        versions=VERSIONS, default_version=DEFAULT_VERSION, may_register=user.may("profiles:write"),
        live=any(p.status is ProfileStatus.PENDING for p in profiles),
    )  # fmt: skip


async def verify_company(request: web.Request) -> web.Response:
    user = request[USER]
    user.need_operator()
    company_id = _company_id(request, user)
    pool = pool_of(request)
    if await directory_queries.verify_company(pool, company_id) is None:
        raise ConsoleError(404, "no such company")
    await registration.publish_pending(pool, request.config_dict[RUNTIME].registrar, company_id)
    return see_other(f"/console/companies/{company_id}")


async def register_profiles(request: web.Request) -> web.Response:
    user = request[USER]
    user.need("profiles:write")
    company_id = _company_id(request, user)
    form = await request.post()
    names = [str(v) for v in form.getall("profile", [])]
    version = str(form.get("version") or DEFAULT_VERSION)
    given = str(form.get("participant_id") or "").strip() or None
    if not names:
        raise ConsoleError(400, "choose at least one profile")
    try:
        await registration.register_profiles(
            pool_of(request), request.config_dict[RUNTIME].registrar, company_id, names, version, given
        )
    except NotFound as exc:
        raise ConsoleError(404, str(exc)) from None
    except Conflict as exc:
        raise ConsoleError(409, str(exc)) from None
    except Invalid as exc:
        raise ConsoleError(400, str(exc)) from None
    return see_other(f"/console/companies/{company_id}")


def add_company_routes(app: web.Application) -> None:
    app.router.add_get("/companies", list_companies)
    app.router.add_post("/companies", create_company)
    app.router.add_get("/companies/{company_id}", company_page)
    app.router.add_post("/companies/{company_id}/verify", verify_company)
    app.router.add_post("/companies/{company_id}/profiles", register_profiles)
