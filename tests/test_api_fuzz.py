"""Property tests of the JSON API: whatever a client sends, the answer is never a 500.

Bodies mix real field names with plausible values (so creates and updates do succeed) and
anything else JSON can carry: engine columns, unknown keys, nested objects and arrays,
huge integers, NaN, unicode, NUL characters, lone surrogates, very long strings. After each
request the database is read back: a refused write changed nothing, and a 201 added
exactly one row.

Strategies are built once from the shipped configuration, the one the `env` fixture
migrates. The tests take `site` rather than `api` and `env`: Hypothesis prints every
argument of a failing test, and the repr of `env` (the whole Model) is so large that
Hypothesis warns, which under warnings-as-errors hides the failing input.
"""

from __future__ import annotations

import json
import math
from datetime import date
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from engine.metadata import load_model
from engine.metadata.model import Field
from engine.runtime.records.query import OPERATORS
from engine.runtime.rollups.refresh import check_rollups
from engine.types import ENGINE_COLUMNS, TEXT_TYPES, FieldType
from engine.web.api import MAX_BODY
from engine.web.openapi import build_openapi
from tests.conftest import CONFIG, Env
from tests.test_api import assert_error, db_state, new_account, row_count

MODEL = load_model(CONFIG)
IDS = [1, 2]  # the accounts _setup makes in a new database
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


class Site:
    """The API client and the database behind it, with a repr short enough to print.

    Not a dataclass: Hypothesis pretty-prints a dataclass field by field.
    """

    def __init__(self, api: TestClient, env: Env) -> None:
        self.api = api
        self.env = env

    def __repr__(self) -> str:
        return f"Site({self.env.engine.dialect.name})"


@pytest.fixture
def site(api: TestClient, env: Env) -> Site:
    return Site(api, env)


# -- JSON values -------------------------------------------------------------------------

_odd_texts = st.one_of(
    st.text(alphabet=st.sampled_from("a\x00\t\n ,.%_-\\'\";"), max_size=30),
    st.lists(st.integers(0xD800, 0xDFFF).map(chr) | st.sampled_from("ab"), min_size=1,
             max_size=3).map("".join),  # lone surrogates: JSON "\ud800"
    st.sampled_from(["", " ", "1e999999999", "-0", "NaN", "²", "\u0661", "1,5", "1,234.50",
                     "2025-02-30", "9999-12-31T23:59:59-05:00", "true", "null"]),
)
_texts = st.one_of(
    st.text(max_size=30),
    _odd_texts,
    st.integers(200, 1_200_000).map(lambda n: "x" * n),  # up to a body over the limit
)
_leaves = st.one_of(
    st.none(), st.booleans(), _texts,
    st.integers(), st.integers(-(10**80), 10**80), st.integers(-(2**64), 2**64),
    st.floats(),  # NaN and Infinity become the non-JSON tokens NaN and Infinity
)
_json = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12)


def _plausible(f: Field, ids: list[int]) -> st.SearchStrategy[Any]:
    """Values a client would really send for `f`, valid or nearly so."""
    t = f.type
    if t in (FieldType.CHOICE, FieldType.MULTICHOICE):
        one = st.sampled_from(f.options)
        return one if t is FieldType.CHOICE else st.lists(one, max_size=3)
    if t in (FieldType.MONEY, FieldType.DECIMAL, FieldType.PERCENT):
        return st.decimals(min_value=-10**14, max_value=10**14, places=3,
                           allow_nan=False).map(str) | st.integers(-1, 10**13)
    if t is FieldType.INTEGER:
        return st.integers(-5, 10**7)
    if t is FieldType.DATE:
        return st.dates(min_value=date(1800, 1, 1)).map(date.isoformat)
    if t is FieldType.BOOLEAN:
        return st.booleans()
    if t in (FieldType.REFERENCE, FieldType.USER, FieldType.DEPARTMENT):
        return st.sampled_from(ids) | st.integers(0, 10**6) | st.builds(
            lambda i: {"id": i}, st.sampled_from(ids))
    if t is FieldType.REGARDING:  # JSON, or the text forms and list filters send
        targets = st.sampled_from(["account", "opportunity", "lead", "nosuch"])
        ids_or_not = st.sampled_from(ids) | st.integers(0, 10**6)
        return st.builds(lambda e, i: {"entity": e, "id": i}, targets, ids_or_not) | \
            st.builds(lambda e, i: f"{e}:{i}", targets, ids_or_not)
    if t is FieldType.EMAIL:
        return st.emails()
    if t is FieldType.URL:
        return st.sampled_from(["https://example.com", "http://a.b/c?d=1", "ftp://x"])
    return st.text(max_size=(f.max_length or 255) + 5) | _odd_texts


def bodies(entity: str) -> st.SearchStrategy[dict[str, Any]]:
    fields = MODEL.entity(entity).fields
    plausible = st.one_of(*[st.tuples(st.just(f.name), _plausible(f, IDS)) for f in fields])
    wild = st.one_of(
        st.tuples(st.sampled_from([f.name for f in fields]), _json),
        st.tuples(st.sampled_from(ENGINE_COLUMNS), _json),
        st.tuples(st.text(max_size=20) | _odd_texts, _json),
    )
    required = st.fixed_dictionaries(
        {f.name: _plausible(f, IDS) for f in fields if f.required})

    def merged(pairs: st.SearchStrategy[tuple[str, Any]],
               size: int) -> st.SearchStrategy[dict[str, Any]]:
        return st.tuples(required, st.lists(pairs, max_size=size)).map(
            lambda both: {**both[0], **dict(both[1])})

    return st.one_of(
        st.lists(plausible | wild, max_size=10).map(dict),  # anything at all
        merged(plausible, 6),  # a real client's body, valid or nearly so
        merged(wild, 2),  # a real body with a few wild keys
    )


def _encode(body: dict[str, Any]) -> bytes:
    # ensure_ascii keeps lone surrogates as \ud800 escapes; NaN stays the bare token NaN
    return json.dumps(body, ensure_ascii=True).encode()


def _setup(api: TestClient, env: Env) -> None:
    """Once per test: two accounts to point at, and an opportunity to update."""
    assert env.model.config_hash == MODEL.config_hash
    if row_count(env, "account") == 0:
        assert [new_account(api, "Fuzz one")["id"], new_account(api, "Fuzz two")["id"]] == IDS
        made = api.post("/api/opportunity", json={"name": "Fuzzed", "account": IDS[0]})
        assert made.status_code == 201, made.text


# -- POST --------------------------------------------------------------------------------


def _check_post(api: TestClient, env: Env, entity: str, body: dict[str, Any]) -> None:
    before = db_state(env)
    resp = api.post(f"/api/{entity}", content=_encode(body),
                    headers={"content-type": "application/json"})
    event(f"{entity}: status {resp.status_code}")
    assert resp.status_code in (201, 400, 409, 413, 422), resp.text
    after = db_state(env)
    if resp.status_code != 201:
        assert_error(resp, resp.status_code)
        assert after == before
        return
    assert len(after[entity]) == len(before[entity]) + 1
    made = resp.json()
    assert made["id"] not in {row[0] for row in before[entity]}
    assert resp.headers["location"] == f"/api/{entity}/{made['id']}"
    assert api.get(resp.headers["location"]).json() == made
    for name in env.model.entity_names:  # nothing else changed but the parents' rollups,
        if name != entity:                  # which equal a recomputation
            assert _without_rollups(env, name, after) == _without_rollups(env, name, before)
    assert check_rollups(env.records) == []


def _without_rollups(env: Env, entity: str, state: dict[str, list[tuple[Any, ...]]]
                     ) -> list[tuple[Any, ...]]:
    table = env.records.schema.table(entity)
    keep = [i for i, column in enumerate(table.c)
            if not (env.model.entity(entity).has_field(column.name)
                    and env.model.entity(entity).field(column.name).rollup is not None)]
    return [tuple(row[i] for i in keep) for row in state[entity]]


@FUZZ
@given(account=bodies("account"), opportunity=bodies("opportunity"))
@example(account={"name": "\ud800"}, opportunity={"\udfff": 1})  # lone surrogates
@example(account={"name": "x", "employees": "1e999999999"},  # int() of it takes hours
         opportunity={"name": "x", "account": 1, "amount": float("nan")})
def test_post_never_500s_and_adds_a_row_only_on_201(
        site: Site, account: dict[str, Any], opportunity: dict[str, Any]) -> None:
    api, env = site.api, site.env
    _setup(api, env)
    _check_post(api, env, "account", account)
    _check_post(api, env, "opportunity", opportunity)


# -- PATCH -------------------------------------------------------------------------------

CURRENT = "<the record's current version>"
_versions = st.one_of(st.just(CURRENT), st.integers(0, 5), st.none(), _json)


def _check_patch(api: TestClient, env: Env, entity: str, body: dict[str, Any],
                 version: Any) -> None:
    target = api.get(f"/api/{entity}", params={"sort": "id"}).json()["items"][0]
    if version is not None:
        body = {**body, "version": target["version"] if version == CURRENT else version}
    before = db_state(env)
    resp = api.patch(f"/api/{entity}/{target['id']}", content=_encode(body),
                     headers={"content-type": "application/json"})
    event(f"{entity}: status {resp.status_code}")
    assert resp.status_code in (200, 400, 409, 413, 422), resp.text
    after = db_state(env)
    if resp.status_code != 200:
        error = assert_error(resp, resp.status_code)
        assert after == before
        if resp.status_code == 409:
            assert error["fields"] == {"version": "stale"}
        return
    assert body["version"] == target["version"] and not isinstance(body["version"], bool)
    updated = resp.json()
    assert updated["version"] in (target["version"], target["version"] + 1)
    assert (updated["version"] == target["version"]) == (after == before)
    for name in env.model.entity_names:  # no row added or removed anywhere
        assert len(after[name]) == len(before[name])
    assert api.get(f"/api/{entity}/{target['id']}").json() == updated


@FUZZ
@given(account=bodies("account"), account_version=_versions,
       opportunity=bodies("opportunity"), opportunity_version=_versions)
def test_patch_never_500s_and_changes_only_on_200(
        site: Site, account: dict[str, Any], account_version: Any,
        opportunity: dict[str, Any], opportunity_version: Any) -> None:
    api, env = site.api, site.env
    _setup(api, env)
    _check_patch(api, env, "account", account, account_version)
    _check_patch(api, env, "opportunity", opportunity, opportunity_version)


# -- a key given twice ---------------------------------------------------------------------


def _finite(value: Any) -> bool:
    """Whether JSON can carry `value` as it is (no NaN or Infinity anywhere in it)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _encode_pairs(pairs: list[tuple[str, Any]]) -> bytes:
    """A JSON object written pair by pair, so a key may repeat."""
    return ("{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs)
            + "}").encode()


@FUZZ
@given(body=bodies("account").filter(bool), data=st.data())
@example(body={"\ud800": 1}, data=None)  # a lone surrogate as the key given twice
def test_a_body_giving_a_key_twice_is_refused_and_changes_nothing(
        site: Site, body: dict[str, Any], data: st.DataObject | None) -> None:
    api, env = site.api, site.env
    _setup(api, env)
    pairs = list(body.items())
    again: Any
    if data is None:
        key, again, where = pairs[0][0], 2, len(pairs)
    else:
        key = data.draw(st.sampled_from([k for k, _ in pairs]), label="key")
        again = data.draw(_json, label="again")
        where = data.draw(st.integers(0, len(pairs)), label="where")
    pairs.insert(where, (key, again))  # before or after the first one, or anywhere
    raw = _encode_pairs(pairs)
    target = api.get("/api/account", params={"sort": "id"}).json()["items"][0]
    before = db_state(env)
    for method, path in [("POST", "/api/account"), ("PATCH", f"/api/account/{target['id']}")]:
        resp = api.request(method, path, content=raw,
                           headers={"content-type": "application/json"})
        if len(raw) > MAX_BODY:
            assert_error(resp, 413, "too_large")
            continue
        error = assert_error(resp, 400, "bad_request")
        if _finite(body) and _finite(again):  # else NaN is refused first, while parsing
            # as JSON reads the key: a high and a low surrogate written apart ("\\ud800\\udc00")
            # are one character there (U+10000)
            read = json.loads(json.dumps(key))
            shown = read[:80].encode("utf-8", "backslashreplace").decode()
            assert error["fields"] == {shown: "given twice"}, error
    assert db_state(env) == before


# -- list query strings and ids ----------------------------------------------------------


def _param_names(entity: str) -> st.SearchStrategy[str]:
    names = [*MODEL.entity(entity).field_names, "id", "created_at", "owner_id", "version"]
    return st.one_of(
        st.sampled_from(["page", "page_size", "sort", "cursor", "deleted"]),
        st.builds(lambda n, op: f"{n}__{op}", st.sampled_from(names),
                  st.sampled_from([*OPERATORS, "like", ""])),
        st.sampled_from(names),
        st.text(max_size=12),
    )


_param_values = st.one_of(
    st.text(max_size=20),
    st.integers(-(10**25), 10**25).map(str),
    st.sampled_from(["", "true", "maybe", "-amount,name", "amount;--", "name,name", "501",
                     "²", "\u0661", "\x00", "won,lost", "2025-01-01", "1e999999999",
                     "9999-12-31T23:59:59-05:00", "eyJ4IjoxfQ", "WzEsMl0", "%", "_"]),
)


def _as_param(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return f"{value['entity']}:{value['id']}" if "entity" in value else str(value["id"])
    if isinstance(value, list):
        return ",".join(_as_param(v) for v in value)
    return str(value)


def _plausible_params(entity: str) -> st.SearchStrategy[tuple[str, str]]:
    """Parameters a real client would send: the filters /openapi.json describes, with
    values that fit the field, and sort keys, page numbers and the recycle-bin flag."""
    e = MODEL.entity(entity)
    described = build_openapi(MODEL)["paths"][f"/api/{entity}"]["get"]["parameters"]
    filters = next(p for p in described if p["name"] == "filters")["schema"]["properties"]
    strategies = []
    for key in filters:
        name, _, op = key.partition("__")
        if op == "blank":
            value: st.SearchStrategy[Any] = st.sampled_from(["true", "false"])
        elif e.has_field(name):
            one = _plausible(e.field(name), IDS)
            value = st.lists(one, min_size=1, max_size=3) if op == "in" else one
        elif name in ("created_at", "updated_at"):
            value = st.dates(min_value=date(1990, 1, 1)).map(date.isoformat)
        else:
            value = st.integers(1, 3)
        strategies.append(st.tuples(st.just(key), value.map(_as_param)))
    sortable = [f.name for f in e.fields if f.type is not FieldType.MULTICHOICE]
    sort = st.lists(st.sampled_from(sortable), min_size=1, max_size=3, unique=True).flatmap(
        lambda names: st.tuples(*[st.sampled_from([n, f"-{n}"]) for n in names])).map(",".join)
    return st.one_of(
        st.tuples(st.just("sort"), sort),
        st.tuples(st.sampled_from(["page", "page_size"]), st.integers(1, 600).map(str)),
        st.tuples(st.just("deleted"), st.sampled_from(["true", "false", "1", "0"])),
        *strategies,
    )


def query_strings(entity: str) -> st.SearchStrategy[str]:
    wild = st.tuples(_param_names(entity), _param_values)
    plausible = _plausible_params(entity)
    texts = [f.name for f in MODEL.entity(entity).fields if f.type in TEXT_TYPES]
    odd_search = st.tuples(
        st.sampled_from([*texts, *[f"{n}__contains" for n in texts]]),
        st.text(alphabet="a\x00%_\\", min_size=1, max_size=6) | _odd_texts)
    return st.one_of(
        st.lists(plausible, max_size=4, unique_by=lambda kv: kv[0]),
        odd_search.map(lambda kv: [kv]),  # one odd search, alone so nothing else is wrong
        st.lists(wild | plausible, max_size=5, unique_by=lambda kv: kv[0]),
        st.lists(wild, max_size=6),  # duplicates too
    ).map(_urlencode)


def _urlencode(pairs: list[tuple[str, str]]) -> str:
    # a lone surrogate goes out as its (invalid) UTF-8 bytes, %ED%A0%80
    return urlencode(pairs, encoding="utf-8", errors="surrogatepass")


def _check_list(api: TestClient, env: Env, entity: str, query: str) -> None:
    before = db_state(env)
    resp = api.get(f"/api/{entity}?{query}")
    event(f"{entity}: status {resp.status_code}")
    assert resp.status_code in (200, 400), resp.text
    if resp.status_code == 400:
        error = assert_error(resp, 400, "bad_request")
        assert error["fields"], error  # a bad list parameter is always named
    else:
        body = resp.json()
        assert set(body) == {"items", "total", "total_exact", "page", "page_size",
                             "next_cursor"}
        assert 1 <= body["page_size"] <= 500 and len(body["items"]) <= body["page_size"]
        assert isinstance(body["total"], int) and body["total"] >= 0
    assert db_state(env) == before


@FUZZ
@given(account=query_strings("account"), opportunity=query_strings("opportunity"))
@example(account="name__contains=%00", opportunity="name__contains=a%00b")  # NUL on PostgreSQL
@example(account="page=%C2%B2", opportunity="page_size=%D9%A1")  # "²".isdigit() is True
def test_list_query_strings_never_500(site: Site, account: str, opportunity: str) -> None:
    api, env = site.api, site.env
    _setup(api, env)
    _check_list(api, env, "account", account)
    _check_list(api, env, "opportunity", opportunity)


@FUZZ
@given(note=bodies("note"), query=query_strings("note"))
@example(note={"body": "x", "regarding": {"entity": "account", "id": 1, "title": "forged"}},
         query="regarding=account%3A1")
@example(note={"body": "x", "regarding": {"entity": "crm_user", "id": 1}},
         query="regarding__ne=nosuch%3A1")
def test_a_note_regarding_any_record_never_500s(site: Site, note: dict[str, Any],
                                                query: str) -> None:
    """A regarding field takes {"entity", "id"} or "entity:id" of any record, or is refused
    with a 4xx; its list filters too."""
    api, env = site.api, site.env
    _setup(api, env)
    _check_post(api, env, "note", note)
    _check_list(api, env, "note", query)


@FUZZ
@given(segment=st.text(min_size=1, max_size=40).filter(
    # "/" (even as %2F) and dot segments change the route, not the id
    lambda t: "/" not in t and t.strip(".") != ""))
def test_arbitrary_record_ids_are_404(site: Site, segment: str) -> None:
    api, env = site.api, site.env
    _setup(api, env)
    resp = api.get(f"/api/account/{quote(segment, safe='')}", follow_redirects=False)
    if segment.isascii() and segment.isdigit() and int(segment) in IDS:
        assert resp.status_code == 200
        assert resp.json()["id"] == int(segment)
    else:
        assert_error(resp, 404, "not_found")
