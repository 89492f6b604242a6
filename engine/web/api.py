"""The JSON API, generated per entity (DESIGN §6). Database work runs in the threadpool."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import IO, Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.messages import localize, msg
from engine.runtime import export
from engine.runtime.access import Actor
from engine.runtime.access.bulk import require_page_size
from engine.runtime.access.reachable import may_reach
from engine.runtime.errors import (
    BadRequest,
    Forbidden,
    Invalid,
    NotFound,
    RecordError,
    Unauthorized,
)
from engine.runtime.flows.conversions import convert
from engine.runtime.flows.explain import automation
from engine.runtime.imports.guard import create_unless_duplicate
from engine.runtime.imports.keys import with_external_ids
from engine.runtime.imports.merge import merge
from engine.runtime.records import Records
from engine.runtime.records.access_explain import explain_access
from engine.runtime.records.exported import export_list
from engine.runtime.records.feed import DEFAULT_LIMIT, check_limit, read_changes
from engine.runtime.records.lines import LINES_KEY, line_edits_of, read_lines, save_with_lines
from engine.runtime.records.query import ListQuery, parse_list_params
from engine.runtime.records.regarding import titled
from engine.runtime.records.timeline import MAX_PAGE as TIMELINE_MAX
from engine.runtime.records.timeline import PAGE as TIMELINE_PAGE
from engine.runtime.records.timeline import items_json, timeline
from engine.runtime.users import Users
from engine.runtime.values import record_json, to_json
from engine.web.duplicates import ALLOW_DUPLICATE, lookup
from engine.web.errors import api_language
from engine.web.exports import currency_format, export_format, export_response
from engine.web.i18n import translations
from engine.web.limits import admit
from engine.web.merging import merge_body
from engine.web.numbers import whole_number
from engine.web.openapi import build_openapi, caller_of
from engine.web.viewer import viewer_of

MAX_BODY = 1024 * 1024
MAX_ID = 2**63 - 1
T = TypeVar("T")


class TooLarge(RecordError):
    status = 413
    code = "too_large"


class UnsupportedMedia(RecordError):
    status = 415
    code = "unsupported_media_type"


def _out(record: dict[str, Any]) -> dict[str, Any]:
    return record_json(record)


class Api:
    def __init__(self, records: Records, users: Users) -> None:
        self.records = records
        self.users = users
        self._documents: dict[tuple[str, ...], dict[str, Any]] = {}

    def routes(self) -> list[Route]:
        return [
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/api/access/explain/{entity}/{record_id}", self.access_explain,
                  methods=["GET"]),
            Route("/api/access/transfer", self.transfer, methods=["POST"]),
            Route("/api/{entity}", self.list_or_create, methods=["GET", "POST"]),
            Route("/api/{entity}/duplicates", self.duplicates, methods=["GET"]),
            Route("/api/{entity}/changes", self.changes, methods=["GET"]),
            Route("/api/{entity}/{record_id}", self.one, methods=["GET", "PATCH", "DELETE"]),
            Route("/api/{entity}/{record_id}/history", self.history, methods=["GET"]),
            Route("/api/{entity}/{record_id}/timeline", self.timeline, methods=["GET"]),
            Route("/api/{entity}/{record_id}/automation", self.automation, methods=["GET"]),
            Route("/api/{entity}/{record_id}/explain/{field}", self.explain, methods=["GET"]),
            Route("/api/{entity}/{record_id}/actions/{action}", self.action, methods=["POST"]),
            Route("/api/{entity}/{record_id}/team", self.team, methods=["GET", "POST"]),
            Route("/api/{entity}/{record_id}/team/{user_id}", self.team_member,
                  methods=["DELETE"]),
        ]

    async def _actor(self, request: Request) -> Actor:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(msg("send an API token: Authorization: Bearer <token>"))
        user = await run_in_threadpool(self.users.by_token, token.strip())
        if user is None:
            raise Unauthorized(msg("the API token is not valid"))
        admit(request, user.id)
        return user.actor()

    async def openapi(self, request: Request) -> Response:
        """The OpenAPI document for the caller (a token, or a signed-in page session): only
        the entities, routes and fields its roles let it use; everything for an
        administrator. Built once per set of roles."""
        viewer = viewer_of(request)
        if viewer is not None and "authorization" not in request.headers:
            actor = viewer.user.actor()
        else:
            actor = await self._actor(request)
        key = tuple(sorted(actor.roles))
        if key not in self._documents:
            self._documents[key] = build_openapi(self.records.model,
                                                 caller_of(self.records.policy, actor))
        return JSONResponse(self._documents[key])

    async def _body(self, request: Request, limit: int = MAX_BODY) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if ctype not in ("application/json", ""):
            raise UnsupportedMedia(msg("send JSON (Content-Type: application/json), not %(type)s",
                                       type=ctype))
        declared = request.headers.get("content-length")
        size_declared = whole_number(declared) if declared else None
        if size_declared is not None and size_declared > limit:
            raise TooLarge(msg("request body is larger than %(limit)s bytes", limit=limit))
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(msg("request body is larger than %(limit)s bytes", limit=limit))
            chunks.append(chunk)
        raw = b"".join(chunks)
        try:
            data = json.loads(raw, parse_float=str, parse_constant=_reject_constant,
                              object_pairs_hook=_refuse_repeated_keys)
        except _RepeatedKey as exc:
            raise BadRequest(msg("request body gives the key '%(key)s' twice", key=exc.key),
                             {exc.key: msg("given twice")}) from None
        except (ValueError, RecursionError) as exc:
            raise BadRequest(msg("request body is not valid JSON: %(why)s", why=str(exc))
                             ) from None
        if not isinstance(data, dict):
            raise BadRequest(msg("request body must be a JSON object of field values"))
        _check_unicode(data)
        return data

    @staticmethod
    def _entity(request: Request) -> str:
        return str(request.path_params["entity"])

    @staticmethod
    def _id(request: Request) -> int:
        raw = str(request.path_params["record_id"])
        number = whole_number(raw)
        if number is None or not 0 < number <= MAX_ID:
            raise NotFound(msg("no record %(id)s", id=repr(raw[:40])))
        return number

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await run_in_threadpool(fn, *args)

    async def _titled(self, actor: Actor, entity: str, record: dict[str, Any]
                      ) -> dict[str, Any]:
        """A record as JSON, a regarding value with its target's title when the caller may
        read that record (engine/runtime/records/regarding.py)."""
        return _out((await self._run(titled, self.records, actor, entity, [record]))[0])

    async def list_or_create(self, request: Request) -> Response:
        actor = await self._actor(request)
        entity = self._entity(request)
        compiled = self.records.compiled(entity)
        if request.method == "POST":
            data = await self._body(request)
            if LINES_KEY in data and self._has_lines(entity):
                edits = line_edits_of(data.pop(LINES_KEY))
                saved = await self._run(save_with_lines, self.records, actor, entity, None,
                                        data, None, edits)
                return JSONResponse(_with_lines(saved), status_code=201,
                                    headers={"Location": f"/api/{entity}/{saved['id']}"})
            data = await self._run(with_external_ids, self.records, actor, entity, data)
            allow = _flag(_single_params(request), ALLOW_DUPLICATE)
            record = await self._run(partial(create_unless_duplicate, allow_duplicate=allow),
                                     self.records, actor, entity, data)
            return JSONResponse(await self._titled(actor, entity, record), status_code=201,
                                headers={"Location": f"/api/{entity}/{record['id']}"})
        params = _single_params(request)
        fmt = export_format(params)
        query = parse_list_params(compiled.entity, params, reserved=frozenset({"filter"}),
                                  hidden=self.records.policy.hidden_fields(actor,
                                                                           compiled.entity))
        if params.get("filter"):
            query = replace(query, filter=self.records.compile_filter(
                entity, params["filter"], actor))
        if fmt is not None:
            return await self._export(request, actor, entity, query, fmt)
        require_page_size(self.records.policy, actor, compiled.entity, query.page_size)
        page = await self._run(self.records.list_records, actor, entity, query)
        items = await self._run(titled, self.records, actor, entity, page.items)
        return JSONResponse({"items": [_out(r) for r in items], "total": page.total,
                             "total_exact": page.total_exact, "page": page.page,
                             "page_size": page.page_size, "next_cursor": page.next_cursor})

    async def duplicates(self, request: Request) -> Response:
        """The records a new one with these values would duplicate (engine/web/duplicates.py)."""
        actor = await self._actor(request)
        found = await self._run(lookup, self.records, actor, self._entity(request),
                                _single_params(request))
        return JSONResponse({"items": [c.to_json() for c in found]})

    async def _export(self, request: Request, actor: Actor, entity: str, query: ListQuery,
                      fmt: str) -> Response:
        """The list as a CSV or XLSX file: its conditions, filter and sort, not its page;
        the rows and fields `actor` may export (engine/runtime/records/exported.py)."""
        records = self.records
        language = api_language(request)
        money = currency_format(records.model.settings.currency)

        def write(target: IO[bytes]) -> None:
            found = export_list(records, actor, entity, query, locale=language)
            export.write(fmt, target, found.columns, found.rows, money=money)

        return await export_response(fmt, entity, write)

    async def one(self, request: Request) -> Response:
        actor = await self._actor(request)
        entity = self._entity(request)
        self.records.compiled(entity)
        record_id = self._id(request)
        if request.method == "GET":
            params = _single_params(request)
            deleted = _flag(params, "deleted")
            record = await self._run(partial(self.records.get, deleted=deleted),
                                     actor, entity, record_id)
            if self._include_lines(entity, params):
                lines = await self._run(read_lines, self.records, actor, entity, record_id)
                return JSONResponse(_with_lines({**record, LINES_KEY: lines}))
            return JSONResponse(await self._titled(actor, entity, record))
        if request.method == "PATCH":
            data = await self._body(request)
            version = data.pop("version", None)
            if isinstance(version, bool) or not isinstance(version, int):
                raise Invalid(msg("a PATCH carries the record's version"),
                              {"version": msg("required: the version you read (a whole number)")})
            if LINES_KEY in data and self._has_lines(entity):
                edits = line_edits_of(data.pop(LINES_KEY))
                saved = await self._run(save_with_lines, self.records, actor, entity,
                                        record_id, data, version, edits)
                return JSONResponse(_with_lines(saved))
            data = await self._run(with_external_ids, self.records, actor, entity, data)
            record = await self._run(self.records.update, actor, entity, record_id, data, version)
            return JSONResponse(await self._titled(actor, entity, record))
        raw_version = _single_params(request).get("version", "")
        version = whole_number(raw_version)
        if raw_version and version is None:
            raise BadRequest(msg("version must be a whole number"),
                             {"version": msg("not a number")})
        await self._run(self.records.delete, actor, entity, record_id, version)
        return Response(status_code=204)

    def _has_lines(self, entity: str) -> bool:
        """Whether `entity`'s form has a line-item grid (engine/runtime/records/lines.py)."""
        return self.records.model.form(entity).lines is not None

    def _include_lines(self, entity: str, params: dict[str, str]) -> bool:
        include = params.get("include")
        if include is None:
            return False
        if include != LINES_KEY or not self._has_lines(entity):
            raise BadRequest(msg("include takes lines, for an entity with line items"),
                             {"include": msg("unknown include '%(value)s'", value=include[:40])})
        return True

    async def changes(self, request: Request) -> Response:
        """What happened to the entity's records since `since`, in commit order, as the
        caller may see it (engine/runtime/records/feed.py; docs/api.md "Changes feed")."""
        actor = await self._actor(request)
        entity = self._entity(request)
        self.records.compiled(entity)
        params = _single_params(request)
        raw = params.get("limit")
        limit = DEFAULT_LIMIT if raw is None else whole_number(raw)
        page = await self._run(read_changes, self.records, actor, entity,
                               params.get("since"), check_limit(limit or 0))
        return JSONResponse({"items": page.items, "next_cursor": page.next_cursor})

    async def history(self, request: Request) -> Response:
        actor = await self._actor(request)
        entity = self._entity(request)
        self.records.compiled(entity)
        record_id = self._id(request)
        rows = await self._run(self.records.history, actor, entity, record_id)
        return JSONResponse({"items": rows, "total": len(rows)})

    async def timeline(self, request: Request) -> Response:
        """A page of the record's timeline (engine/runtime/records/timeline.py), newest
        first; `before`: the `next_cursor` of the page before."""
        actor = await self._actor(request)
        entity = self._entity(request)
        self.records.compiled(entity)
        record_id = self._id(request)
        params = _single_params(request)
        size = whole_number(params.get("page_size", "")) if params.get("page_size") else None
        if params.get("page_size") and (size is None or not 0 < size <= TIMELINE_MAX):
            raise BadRequest(msg("invalid list parameters"), {"page_size": msg(
                "must be a whole number from %(lo)s to %(hi)s", lo=1, hi=TIMELINE_MAX)})
        page = await self._run(partial(timeline, before=params.get("before") or None,
                                       limit=size or TIMELINE_PAGE),
                               self.records, actor, entity, record_id)
        return JSONResponse({"items": items_json(page.items),
                             "next_cursor": page.next_cursor})

    async def automation(self, request: Request) -> Response:
        """Why the record changed: its flows' automation runs, newest first, and its stage
        history (engine/runtime/flows/explain.py), without fields hidden from the caller."""
        actor = await self._actor(request)
        entity = self._entity(request)
        self.records.compiled(entity)
        record_id = self._id(request)
        out = await self._run(automation, self.records, actor, entity, record_id)
        return JSONResponse(out)

    async def explain(self, request: Request) -> Response:
        actor = await self._actor(request)
        entity = self._entity(request)
        self.records.compiled(entity)
        record_id = self._id(request)
        out = await self._run(self.records.explain, actor, entity, record_id,
                              str(request.path_params["field"]))
        out["value"] = to_json(out["value"])
        # the words of each term in the language the client asks for, as errors are
        language = api_language(request)
        gettext = translations()[language].gettext
        for term in out["terms"]:
            term["value"] = to_json(term["value"])
            term["reads"] = [{**r, "value": to_json(r["value"])} for r in term["reads"]]
            term["answers"] = localize(term["answers"], gettext, language)
            term["text"] = localize(term["text"], gettext, language)
        return JSONResponse(out, headers={"Content-Language": language})

    async def action(self, request: Request) -> Response:
        actor = await self._actor(request)
        entity = self._entity(request)
        self.records.compiled(entity)
        record_id = self._id(request)
        action = request.path_params["action"]
        if action == "restore":
            record = await self._run(self.records.restore, actor, entity, record_id)
            return JSONResponse(await self._titled(actor, entity, record))
        if action == "purge":
            await self._run(self.records.purge, actor, entity, record_id)
            return Response(status_code=204)
        if action == "assign":
            body = await self._body(request)
            _only(body, {"owner", "department", "version"})
            owner = await self._user_id(body.get("owner"), "owner", reachable_by=actor)
            department = _optional_id(body.get("department"), "department")
            version = _optional_id(body.get("version"), "version")
            result = await self._run(partial(self.records.assign, owner=owner,
                                             department=department, version=version),
                                     actor, entity, record_id)
            # visible: false when the record went out of the caller's sight ("record" then
            # holds only its id, version, owner and department)
            return JSONResponse({"record": _out(result["record"]),
                                 "cascaded": result["cascaded"],
                                 "visible": result["visible"]})
        if action == "merge":  # the record of the URL survives (engine/web/merging.py)
            loser, versions, take = merge_body(await self._body(request))
            merged = await self._run(partial(merge, self.records, actor, entity, record_id,
                                             loser, take=take, versions=versions))
            return JSONResponse({**merged, "record": await self._titled(actor, entity,
                                                                        merged["record"])})
        # a flow's conversion (engine/runtime/flows/conversions.py); unknown: a 404 naming
        # the actions there are
        body = await self._body(request) if await _has_body(request) else {}
        done = await self._run(convert, self.records, actor, entity, record_id, action, body)
        out = done.json()
        main = out["records"][out["main"]]
        return JSONResponse(out, status_code=201, headers={"Location": main["url"]})

    async def _user_id(self, value: Any, key: str,
                       reachable_by: Actor | None = None) -> int | None:
        """A user given by id or by name; None when not given. With `reachable_by`, a user
        that actor may not name (engine/runtime/access/reachable.py) answers as a name no
        user has."""
        if value is None:
            return None
        if isinstance(value, str) and not value.isdigit():
            user = await self._run(self.users.by_name_or_none, value)
            if user is not None and reachable_by is not None \
                    and not await self._run(self._reaches, reachable_by, user.id):
                user = None
            if user is None:
                raise Invalid(msg("no user named %(name)s", name=repr(value[:80])),
                              {key: msg("no such user")})
            return user.id
        return _optional_id(value, key)

    def _reaches(self, actor: Actor, user_id: int) -> bool:
        with self.records.reading() as conn:
            return may_reach(conn, self.records.policy, actor, self.records.users, user_id)

    async def team(self, request: Request) -> Response:
        actor = await self._actor(request)
        entity = self._entity(request)
        self.records.compiled(entity)
        record_id = self._id(request)
        if request.method == "GET":
            members = await self._run(self.records.team, actor, entity, record_id)
        else:
            body = await self._body(request)
            _only(body, {"user", "access"})
            user_id = await self._user_id(body.get("user"), "user", reachable_by=actor)
            if user_id is None:
                raise Invalid(msg("say who joins the team"),
                              {"user": msg("required: a user id or name")})
            access = body.get("access", "read")
            if not isinstance(access, str):
                raise Invalid(msg("team access is read or edit"),
                              {"access": msg("must be read or edit")})
            members = await self._run(self.records.set_team_member, actor, entity, record_id,
                                      user_id, access)
        return JSONResponse({"items": [_out(m) for m in members], "total": len(members)})

    async def team_member(self, request: Request) -> Response:
        actor = await self._actor(request)
        entity = self._entity(request)
        self.records.compiled(entity)
        record_id = self._id(request)
        raw = str(request.path_params["user_id"])
        user_id = whole_number(raw)
        if user_id is None or not 0 < user_id <= MAX_ID:
            raise NotFound(msg("no user %(id)s", id=repr(raw[:40])))
        members = await self._run(self.records.remove_team_member, actor, entity, record_id,
                                  user_id)
        return JSONResponse({"items": [_out(m) for m in members], "total": len(members)})

    async def access_explain(self, request: Request) -> Response:
        actor = await self._actor(request)
        entity = self._entity(request)
        self.records.compiled(entity)
        record_id = self._id(request)
        name = _single_params(request).get("user")
        subject = actor
        if name:
            if name != actor.name and not self.records.policy.is_admin(actor):
                # before the lookup: a 404 would tell which user names exist
                raise Forbidden(msg("only an administrator may explain another user's access"))
            found = await self._run(self.users.by_name_or_none, name)
            if found is None:
                raise NotFound(msg("no user named %(name)s", name=repr(name[:80])))
            subject = found.actor()
        out = await self._run(explain_access, self.records, actor, subject, entity, record_id)
        return JSONResponse(out)

    async def transfer(self, request: Request) -> Response:
        actor = await self._actor(request)
        body = await self._body(request)
        _only(body, {"from", "to", "deactivate"})
        if not self.records.policy.is_admin(actor):
            # before looking the names up: a 422 "no user named" would tell which ones exist
            raise Forbidden(msg("only an administrator may transfer a user's records"))
        source = await self._user_id(body.get("from"), "from")
        target = await self._user_id(body.get("to"), "to")
        if source is None or target is None:
            raise Invalid(msg("say whose records go to whom"),
                          {k: msg("required: a user id or name")
                           for k in ("from", "to") if body.get(k) is None})
        deactivate = body.get("deactivate", False)
        if not isinstance(deactivate, bool):
            raise Invalid(msg("deactivate is true or false"),
                          {"deactivate": msg("must be true or false")})
        moved = await self._run(partial(self.records.transfer_owned, deactivate=deactivate),
                                actor, source, target)
        return JSONResponse({"moved": moved, "total": sum(moved.values()),
                             "deactivated": deactivate})


async def _has_body(request: Request) -> bool:
    """Whether a POST carries a body (an action's body is optional)."""
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def _with_lines(record: dict[str, Any]) -> dict[str, Any]:
    """A record saved or read with its lines, as JSON."""
    return {**_out({k: v for k, v in record.items() if k != LINES_KEY}),
            LINES_KEY: [_out(line) for line in record[LINES_KEY]]}


def _single_params(request: Request) -> dict[str, str]:
    """The query parameters, each at most once; NUL is never part of a valid value."""
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key in params:
            raise BadRequest(msg("parameter '%(key)s' is given twice", key=key),
                             {key: msg("given twice")})
        if "\x00" in key or "\x00" in value:
            raise BadRequest(msg("parameter '%(key)s' contains a NUL character", key=key),
                             {key: msg("contains a NUL character")})
        params[key] = value
    return params


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Invalid(msg("unknown key '%(key)s'; send %(allowed)s", key=unknown[0],
                          allowed=", ".join(sorted(allowed))),
                      {k: msg("unknown key") for k in unknown})


def _optional_id(value: Any, key: str) -> int | None:
    """A positive whole number from JSON (or its digits as text), or None when absent."""
    if value is None:
        return None
    if isinstance(value, str):
        value = whole_number(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise Invalid(msg("%(key)s must be a positive whole number", key=key),
                      {key: msg("not an id")})
    return value


def _flag(params: dict[str, str], key: str) -> bool:
    raw = params.get(key, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise BadRequest(msg("%(key)s must be true or false", key=key),
                         {key: msg("must be true or false")})
    return raw in ("true", "1")


def _check_unicode(data: dict[str, Any]) -> None:
    """Reject text holding lone surrogates (JSON "\\ud800"): no database can store them."""
    todo: list[Any] = [data]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise BadRequest(msg("request body is not valid JSON: it holds an unpaired "
                                     "surrogate (a \\ud800-\\udfff escape)")) from None


class _RepeatedKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        # as the error names it: short, and encodable (a lone surrogate escaped)
        self.key = key[:80].encode("utf-8", "backslashreplace").decode("utf-8")


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: `{"a": 1, "a": 2}` says two things at once,
    and which one counts would depend on the parser (json keeps the last one)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _RepeatedKey(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
