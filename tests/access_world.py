"""The world of the access matrix (tests/test_access_matrix.py): departments, users, records.

Departments HQ > REGION > BRANCH, plus OTHER outside that tree. One user per scope, an admin,
a read-only user and a team member, each with an API token; every request goes through
HTTP. Every seeded record carries a unique marker in its name and unique hidden values, so
"nothing invisible leaks" is a search of the raw response text.

The expectations (VISIBLE, UPDATABLE, ...) are written out by hand from the roles below,
never computed by the policy: a policy bug must make the matrix fail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from httpx import Response
from starlette.testclient import TestClient

from tests.conftest import Env, EnvFactory, replace_roles

ROLES_YAML = """\
roles:
  admin:
    admin: true
  r_none:
    entities:
      account: none
      opportunity: none
      department: {read: all}
  r_own:
    entities:
      account: own
      opportunity: own
      department: {read: all}
    fields: &masked
      account: {credit_limit: hidden, annual_revenue: readonly}
      opportunity: {amount: hidden, competitor: readonly}
  r_dept:
    entities:
      account: department
      opportunity: department
    fields: *masked
  r_tree:
    entities:
      account: department_tree
      opportunity: department_tree
    fields:
      account: {annual_revenue: readonly}
      opportunity: {competitor: readonly}
  r_all:
    entities:
      account: {create: all, read: all, update: all, delete: all}
      opportunity: {create: all, read: all, update: all, delete: all}
  r_reader:
    entities:
      account: {read: department_tree}
      opportunity: {read: department_tree}
    fields: *masked
"""

DEPARTMENTS = ("HQ", "REGION", "BRANCH", "OTHER")
PARENT = {"REGION": "HQ", "BRANCH": "REGION"}

# user -> (role, department); o_* only own the seeded records.
USERS: dict[str, tuple[str, str]] = {
    "u_none": ("r_none", "BRANCH"),
    "u_own": ("r_own", "BRANCH"),
    "u_dept": ("r_dept", "REGION"),
    "u_tree": ("r_tree", "REGION"),
    "u_all": ("r_all", "OTHER"),
    "u_reader": ("r_reader", "HQ"),
    "u_team": ("r_own", "OTHER"),
    "o_hq": ("r_own", "HQ"),
    "o_region": ("r_own", "REGION"),
    "o_branch": ("r_own", "BRANCH"),
    "o_other": ("r_own", "OTHER"),
}
ACTORS = ("admin", "u_none", "u_own", "u_dept", "u_tree", "u_all", "u_reader", "u_team")

# Seeded record key -> owner. Both entities get the same keys; opportunity "team_e" points
# to account "other", which its team member cannot see.
KEYS = ("hq", "region", "branch", "other", "own", "team_r", "team_e")
OWNER = {"hq": "o_hq", "region": "o_region", "branch": "o_branch", "other": "o_other",
         "own": "u_own", "team_r": "o_other", "team_e": "o_other"}
OPP_ACCOUNT = {k: k for k in KEYS} | {"team_e": "other"}
TEAM = {"team_r": ("u_team", "read"), "team_e": ("u_team", "edit")}

ALL = frozenset(KEYS)
TREE = frozenset({"region", "branch", "own"})  # REGION and BRANCH (u_own is in BRANCH)
# None: the role grants nothing on the entity (403 on every route).
VISIBLE: dict[str, frozenset[str] | None] = {
    "admin": ALL, "u_none": None, "u_own": frozenset({"own"}), "u_dept": frozenset({"region"}),
    "u_tree": TREE, "u_all": ALL, "u_reader": frozenset({"hq"}) | TREE,
    "u_team": frozenset({"team_r", "team_e"}),
}
UPDATABLE: dict[str, frozenset[str]] = {
    "admin": ALL, "u_none": frozenset(), "u_own": frozenset({"own"}),
    "u_dept": frozenset({"region"}), "u_tree": TREE, "u_all": ALL, "u_reader": frozenset(),
    "u_team": frozenset({"team_e"}),  # edit access counts for update, read does not
}
DELETABLE: dict[str, frozenset[str]] = UPDATABLE | {"u_team": frozenset()}  # team never deletes
ASSIGNABLE: dict[str, frozenset[str]] = DELETABLE | {"u_all": frozenset()}  # r_all: no assign
CAN_CREATE = frozenset({"admin", "u_own", "u_dept", "u_tree", "u_all", "u_team"})
HIDES = frozenset({"u_none", "u_own", "u_dept", "u_reader", "u_team"})  # amount, credit_limit
READONLY = frozenset({"u_own", "u_dept", "u_tree", "u_team"})  # competitor, annual_revenue
# A readable account to reference on create, and one the user cannot see (None: sees all).
READABLE_ACCOUNT = {"admin": "hq", "u_own": "own", "u_dept": "region", "u_tree": "branch",
                    "u_all": "other", "u_team": "team_r", "u_reader": "hq", "u_none": "hq"}
UNREADABLE_ACCOUNT: dict[str, str | None] = {
    "admin": None, "u_own": "hq", "u_dept": "branch", "u_tree": "hq", "u_all": None,
    "u_team": "other", "u_reader": "other", "u_none": "other"}

HIDDEN_FIELD = {"opportunity": "amount", "account": "credit_limit"}
READONLY_FIELD = {"opportunity": "competitor", "account": "annual_revenue"}
REFERENCE_FIELD = {"opportunity": "account", "account": "parent"}


def name_marker(entity: str, key: str) -> str:
    return f"SECRET-{entity[:3]}-{key}-zq"


@dataclass
class World:
    env: Env
    http: TestClient
    tokens: dict[str, str]
    user_ids: dict[str, int]
    departments: dict[str, int]
    ids: dict[str, dict[str, int]] = field(default_factory=dict)
    """entity -> record key -> id."""
    hidden_values: dict[str, list[str]] = field(default_factory=dict)
    """record key -> hidden values of its opportunity and account, as JSON text."""

    def call(self, user: str, method: str, url: str, body: Any = None,
             params: dict[str, str] | None = None) -> Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        if body is None:
            return self.http.request(method, url, headers=headers, params=params)
        return self.http.request(method, url, headers=headers, params=params, json=body)

    def admin_ok(self, method: str, url: str, body: Any = None) -> Any:
        """An admin request that must succeed (setup); its JSON body, if any."""
        resp = self.call("admin", method, url, body)
        assert resp.status_code < 300, f"{method} {url}: {resp.status_code} {resp.text}"
        return resp.json() if resp.content else None

    def version(self, entity: str, record_id: int) -> int:
        return int(self.admin_ok("GET", f"/api/{entity}/{record_id}")["version"])

    def markers(self, keys: Iterable[str]) -> set[str]:
        """Names and hidden values of the records `keys` of both entities."""
        out: set[str] = set()
        for k in keys:
            out |= {name_marker("opportunity", k), name_marker("account", k),
                    *self.hidden_values[k]}
        return out

    def forbidden(self, user: str) -> set[str]:
        """What must never appear in a response to `user`: every marker of a record they
        cannot see, and every hidden value when their role hides the field."""
        visible = VISIBLE.get(user)
        seen = visible if visible is not None else frozenset()
        out = self.markers(ALL - seen)
        if user in HIDES:
            out |= {v for k in KEYS for v in self.hidden_values[k]}
        return out


def build_world(make_env: EnvFactory, config_dir: Path) -> World:
    replace_roles(config_dir, ROLES_YAML)
    env = make_env(config_dir)
    http = env.client()
    world = World(env, http, {"admin": env.users.new_token("admin")},
                  {"admin": env.admin.id}, {})
    for code in DEPARTMENTS:
        parent = world.departments.get(PARENT.get(code, ""))
        row = world.admin_ok("POST", "/api/department",
                             {"name": f"Dept {code}", "code": code, "parent": parent})
        world.departments[code] = row["id"]
    for name, (role, dept) in USERS.items():
        world.user_ids[name] = env.users.add(name, [role],
                                             department_id=world.departments[dept]).id
        world.tokens[name] = env.users.new_token(name)
    _seed(world)
    return world


def _seed(world: World) -> None:
    """Each owner creates an account and an opportunity; the admin then sets the hidden
    values (twice, so history holds old and new ones) and the team memberships."""
    world.ids = {"account": {}, "opportunity": {}}
    for key in KEYS:
        resp = world.call(OWNER[key], "POST", "/api/account", {"name": name_marker("account", key)})
        assert resp.status_code == 201, resp.text
        world.ids["account"][key] = resp.json()["id"]
    for i, key in enumerate(KEYS):
        resp = world.call(OWNER[key], "POST", "/api/opportunity", {
            "name": name_marker("opportunity", key),
            "account": world.ids["account"][OPP_ACCOUNT[key]]})
        assert resp.status_code == 201, resp.text
        opp = world.ids["opportunity"][key] = resp.json()["id"]
        acc = world.ids["account"][key]
        # Values unlike anything else in a response (ids, versions, timestamps).
        first, second, credit = f"9173{i:02d}.37", f"8264{i:02d}.59", f"5551{i:02d}.17"
        world.admin_ok("PATCH", f"/api/opportunity/{opp}", {"version": 1, "amount": first})
        row = world.admin_ok("PATCH", f"/api/opportunity/{opp}",
                             {"version": 2, "amount": second})
        world.admin_ok("PATCH", f"/api/account/{acc}", {"version": 1, "credit_limit": credit})
        world.hidden_values[key] = [first, second, credit, row["weighted"]]
    for key, (user, access) in TEAM.items():
        for entity in ("account", "opportunity"):
            world.admin_ok("POST", f"/api/{entity}/{world.ids[entity][key]}/team",
                           {"user": user, "access": access})


# -- the shipped config/roles.yaml ---------------------------------------------------------

SHIPPED_USERS = {"mgr": ("sales_manager", "REGION"), "rep": ("sales_rep", "BRANCH"),
                 "rep_hq": ("sales_rep", "HQ"), "partner": ("partner", "PARTNERS"),
                 "mkt": ("marketing", "HQ")}
OWNERS = ("rep", "rep_hq", "partner")  # each owns one account and one opportunity
# Whose opportunity and account each user sees (the same for both), from the roles.
SHIPPED_SEES = {"admin": set(OWNERS), "mgr": {"rep"}, "rep": {"rep"}, "rep_hq": {"rep_hq"},
                "partner": {"partner"}, "mkt": set(OWNERS)}
SHIPPED_HIDDEN = {  # entity -> field -> the users it is hidden from
    "opportunity": {"amount": {"mkt"}, "weighted": {"mkt"}, "score": {"partner"}},
    "account": {"credit_limit": {"mkt", "partner"}, "annual_revenue": {"mkt", "partner"},
                "tier": {"partner"}},
}


def build_shipped_world(make_env: EnvFactory) -> World:
    """The shipped config: HQ > REGION > BRANCH and PARTNERS; reps and the partner create
    their records (name markers "SHIP-..."); hidden values are kept under
    "<entity>:<owner>"."""
    env = make_env()
    world = World(env, env.client(), {"admin": env.users.new_token("admin")},
                  {"admin": env.admin.id}, {})
    for code, parent, kind in (("HQ", None, "headquarters"), ("REGION", "HQ", "region"),
                               ("BRANCH", "REGION", "branch"), ("PARTNERS", None, "partner")):
        row = world.admin_ok("POST", "/api/department", {
            "name": f"Dept {code}", "code": code, "kind": kind,
            "parent": world.departments[parent] if parent else None})
        world.departments[code] = row["id"]
    for name, (role, dept) in SHIPPED_USERS.items():
        world.user_ids[name] = env.users.add(name, [role],
                                             department_id=world.departments[dept]).id
        world.tokens[name] = env.users.new_token(name)
    world.ids = {"account": {}, "opportunity": {}}
    for i, owner in enumerate(OWNERS):
        acc = world.call(owner, "POST", "/api/account", {"name": name_marker("account", owner)})
        assert acc.status_code == 201, acc.text
        opp = world.call(owner, "POST", "/api/opportunity", {
            "name": name_marker("opportunity", owner), "account": acc.json()["id"],
            "amount": f"7219{i:02d}.43", "budget": "confirmed"})
        assert opp.status_code == 201, opp.text
        world.ids["account"][owner] = acc.json()["id"]
        world.ids["opportunity"][owner] = opp.json()["id"]
        credit, revenue = f"6640{i:02d}.29", f"3308{i:02d}.71"
        world.admin_ok("PATCH", f"/api/account/{acc.json()['id']}", {
            "version": 1, "credit_limit": credit, "annual_revenue": revenue})
        world.hidden_values[owner] = [f"7219{i:02d}.43", opp.json()["weighted"], credit,
                                      revenue]
        world.hidden_values[f"opportunity:{owner}"] = world.hidden_values[owner][:2]
        world.hidden_values[f"account:{owner}"] = world.hidden_values[owner][2:]
    return world


@dataclass
class Checker:
    """Collects every mismatch of a matrix, so one run reports all failing cells."""

    problems: list[str] = field(default_factory=list)
    cells: int = 0

    def expect(self, cell: str, resp: Response, status: int, *,
               forbidden: Iterable[str] = (), error_field: str | None = None) -> bool:
        """The response has `status`, reveals none of `forbidden`, and (for an error)
        names `error_field`. True when the status matched."""
        self.cells += 1
        ok = resp.status_code == status
        if not ok:
            self.problems.append(f"{cell}: status {resp.status_code}, expected {status}: "
                                 f"{resp.text[:300]}")
        leaked = sorted(m for m in forbidden if m in resp.text)
        if leaked:
            self.problems.append(f"{cell}: response reveals {leaked}")
        if ok and error_field is not None:
            fields = resp.json()["error"]["fields"]
            if error_field not in fields:
                self.problems.append(f"{cell}: error does not name {error_field!r}: {fields}")
        return ok

    def check(self, cell: str, condition: bool, what: str) -> None:
        self.cells += 1
        if not condition:
            self.problems.append(f"{cell}: {what}")

    def done(self) -> None:
        assert not self.problems, (f"{len(self.problems)} of {self.cells} cells failed:\n"
                                   + "\n".join(self.problems))


# -- the shipped roles on every entity -----------------------------------------------------

# One more user per shipped role the world above does not have.
EVERY_ROLE_USERS = {"exec": ("executive", "HQ"), "pre": ("presales", "REGION"),
                    "fin": ("finance", "HQ"), "smgr": ("service_manager", "REGION"),
                    "agent": ("service_agent", "BRANCH")}
ALL_SHIPPED_USERS = SHIPPED_USERS | EVERY_ROLE_USERS
ROLE_ORDER = ("executive", "sales_manager", "sales_rep", "presales", "marketing", "finance",
              "service_manager", "service_agent", "partner")


def _per_role(*cru: str) -> dict[str, str]:
    """Create, read and update scopes per role of ROLE_ORDER, one letter each: - none,
    o own, d department, t department_tree, a all."""
    assert len(cru) == len(ROLE_ORDER) and all(len(s) == 3 for s in cru)
    return dict(zip(ROLE_ORDER, cru, strict=True))


# Written by hand from config/roles.yaml (docs/access.md, "The shipped roles"): entity ->
# role -> create, read, update scopes. The columns follow ROLE_ORDER:
#                      exec   mgr    rep    pre    mkt    fin    smgr   agent  partner
EVERY_ENTITY_SCOPES: dict[str, dict[str, str]] = {
    "account": _per_role("-a-", "ttt", "odo", "-t-", "-a-", "-aa", "-at", "-t-", "ooo"),
    "contact": _per_role("-a-", "ttt", "odo", "-t-", "-a-", "-a-", "oat", "oto", "ooo"),
    "contact_job_change":
        _per_role("-a-", "ttt", "odo", "-t-", "-a-", "-a-", "oat", "oto", "ooo"),
    "lead": _per_role("-a-", "ttt", "ooo", "---", "aaa", "---", "---", "---", "---"),
    "opportunity": _per_role("-a-", "ttt", "ooo", "-oo", "-a-", "---", "---", "---", "ooo"),
    "opportunity_competitor":
        _per_role("-a-", "ttt", "ooo", "ooo", "-a-", "---", "---", "---", "---"),
    "opportunity_stage_plan":
        _per_role("-a-", "ttt", "ooo", "-oo", "-a-", "---", "---", "---", "---"),
    "activity": _per_role("-a-", "ttt", "ooo", "ooo", "ooo", "ooo", "ttt", "ooo", "ooo"),
    "note": _per_role("-a-", "ttt", "ooo", "ooo", "ooo", "ooo", "ttt", "ooo", "ooo"),
    "sales_target": _per_role("-a-", "ttt", "-o-", "---", "---", "-a-", "---", "---", "---"),
    "competitor": _per_role("-a-", "oaa", "oao", "oao", "-a-", "---", "---", "---", "---"),
    "competitor_product":
        _per_role("-a-", "-a-", "-a-", "oao", "-a-", "---", "-a-", "-a-", "---"),
    "product_line": _per_role("-a-", "-a-", "-a-", "-a-", "-a-", "-a-", "-a-", "-a-", "-a-"),
    "product": _per_role("-a-", "-a-", "-a-", "-a-", "-a-", "-a-", "-a-", "-a-", "-a-"),
    "quote": _per_role("-a-", "ttt", "ooo", "-to", "---", "---", "---", "---", "ooo"),
    "quote_line": _per_role("-a-", "ttt", "ooo", "oto", "---", "---", "---", "---", "ooo"),
    "contract": _per_role("-a-", "ttt", "ooo", "---", "---", "-a-", "-t-", "---", "oo-"),
    "contract_line": _per_role("-a-", "ttt", "ooo", "---", "---", "-a-", "-t-", "---", "oo-"),
    "execution_plan_line":
        _per_role("-a-", "ttt", "ooo", "---", "---", "-aa", "-tt", "-oo", "---"),
    "invoice": _per_role("-a-", "-t-", "-d-", "---", "---", "aaa", "---", "---", "---"),
    "receipt": _per_role("-a-", "-t-", "-d-", "---", "---", "aaa", "---", "---", "---"),
    "campaign": _per_role("-a-", "-a-", "-a-", "-a-", "aaa", "---", "-a-", "---", "---"),
    "campaign_member": _per_role("-a-", "ott", "ooo", "---", "aaa", "---", "---", "---", "---"),
    "service_queue": _per_role("-a-", "---", "---", "---", "---", "---", "aaa", "-a-", "---"),
    "service_queue_member":
        _per_role("-a-", "---", "---", "---", "---", "---", "aaa", "-a-", "---"),
    "service_request": _per_role("-a-", "-t-", "-d-", "---", "---", "---", "ttt", "oto", "ooo"),
    "service_plan": _per_role("-a-", "-t-", "-d-", "---", "---", "---", "ttt", "ooo", "ooo"),
    "work_order": _per_role("-a-", "-t-", "-d-", "---", "---", "---", "ttt", "ooo", "ooo"),
    "work_order_part": _per_role("-a-", "-t-", "-d-", "---", "---", "---", "ttt", "ooo", "ooo"),
    "expense": _per_role("oao", "ott", "ooo", "ooo", "ooo", "aaa", "ott", "ooo", "---"),
    "expense_budget": _per_role("aaa", "-t-", "-d-", "-d-", "-d-", "aaa", "-t-", "-d-", "---"),
    "knowledge_article":
        _per_role("-a-", "-a-", "-a-", "oao", "-a-", "-a-", "oat", "-a-", "-o-"),
    "knowledge_article_product":
        _per_role("-a-", "-a-", "-a-", "oao", "-a-", "-a-", "oat", "-a-", "---"),
    "announcement": _per_role("-a-", "-a-", "-a-", "-a-", "-a-", "-a-", "-a-", "-a-", "-o-"),
    "announcement_target":
        _per_role("-a-", "-a-", "-a-", "-a-", "-a-", "-a-", "-a-", "-a-", "---"),
    "announcement_read":
        _per_role("oao", "oto", "ooo", "ooo", "ooo", "ooo", "oto", "ooo", "ooo"),
    "department": _per_role("-a-", "-a-", "-a-", "-a-", "-a-", "-a-", "-a-", "-a-", "---"),
}

_FINANCES = ("credit_limit", "annual_revenue", "opening_receivable", "opening_advance", "bank",
             "bank_account", "tax_id", "contracted", "invoiced", "collected",
             # computed from them, hidden with them
             "balance", "receivable", "advance", "available_credit")
_NO_FINANCES = {"marketing", "service_agent", "partner"}
# entity -> field -> the roles it is hidden from (by roles.yaml, or computed from a field
# hidden by it).
EVERY_ENTITY_HIDDEN: dict[str, dict[str, set[str]]] = {
    "account": {f: set(_NO_FINANCES) for f in _FINANCES}
    | {"credit_limit": _NO_FINANCES | {"presales"},
       "available_credit": _NO_FINANCES | {"presales"},
       "tier": {"partner"}, "value_rating": {"partner"}, "open_deals": {"partner"},
       "open_pipeline": {"marketing", "partner"}, "won_amount": {"marketing", "partner"}},
    "opportunity": {"amount": {"marketing"}, "weighted": {"marketing"},
                    "score": {"partner"}, "evaluation_score": {"partner"}},
    "campaign": {"won_amount": {"marketing"}, "return_on_cost": {"marketing"}},
    "product": {"unit_cost": {"presales", "marketing", "partner"},
                "list_margin": {"presales", "marketing", "partner"}},
    "quote": {f: {"presales", "partner"} for f in ("cost_total", "margin", "margin_percent")},
    "quote_line": {f: {"presales", "partner"}
                   for f in ("unit_cost", "cost_total", "margin", "margin_percent")},
    "contract": {f: {"service_manager", "partner"} for f in ("cost_total", "margin")},
    "contract_line": {f: {"service_manager", "partner"}
                      for f in ("unit_cost", "cost_total", "margin")},
}
_TREE = {"HQ": {"HQ", "REGION", "BRANCH"}, "REGION": {"REGION", "BRANCH"},
         "BRANCH": {"BRANCH"}, "PARTNERS": {"PARTNERS"}}


def reached(user: str, letter: str) -> set[str]:
    """The owners of OWNERS whose records `user` reaches with a scope letter, from where the
    users sit (the department tree above, written out)."""
    dept = ALL_SHIPPED_USERS[user][1]
    owner_dept = {o: ALL_SHIPPED_USERS[o][1] for o in OWNERS}
    return {"-": set(), "o": {user} & set(OWNERS),
            "d": {o for o in OWNERS if owner_dept[o] == dept},
            "t": {o for o in OWNERS if owner_dept[o] in _TREE[dept]},
            "a": set(OWNERS)}[letter]


def build_every_entity_world(make_env: EnvFactory) -> World:
    """The shipped world, a user of every shipped role, and for each owner of OWNERS one
    record of every entity (made by the admin, then assigned to the owner), with distinct
    values in the fields some roles may not see."""
    world = build_shipped_world(make_env)
    env = world.env
    for name, (role, dept) in EVERY_ROLE_USERS.items():
        world.user_ids[name] = env.users.add(name, [role],
                                             department_id=world.departments[dept]).id
        world.tokens[name] = env.users.new_token(name)
    for i, owner in enumerate(OWNERS):
        ids = _seed_every_entity(world, owner, i)
        for entity, rid in ids.items():
            world.ids.setdefault(entity, {})[owner] = rid
            world.admin_ok("POST", f"/api/{entity}/{rid}/actions/assign", {"owner": owner})
    return world


def _seed_every_entity(world: World, owner: str, i: int) -> dict[str, int]:
    acc, opp = world.ids["account"][owner], world.ids["opportunity"][owner]
    world.admin_ok("PATCH", f"/api/account/{acc}", {
        "version": world.version("account", acc), "bank": f"Bank zq{i}",
        "bank_account": f"62220{i}8841", "tax_id": f"91310{i}TAX", "tier": "key",
        "value_rating": "a", "opening_receivable": f"3105{i:02d}.61",
        "opening_advance": f"1207{i:02d}.19"})
    ids: dict[str, int] = {}
    user = world.user_ids[owner]
    dept = world.departments[ALL_SHIPPED_USERS[owner][1]]
    day, later = "2026-03-02", "2026-06-30"

    def make(entity: str, body: dict[str, Any]) -> int:
        ids[entity] = world.admin_ok("POST", f"/api/{entity}", body)["id"]
        return ids[entity]

    line = make("product_line", {"name": f"Line {owner}", "code": f"PL{i}"})
    product = make("product", {"name": f"Product {owner}", "code": f"P{i}",
                               "product_line": line, "list_price": f"8800{i:02d}.00",
                               "unit_cost": f"4417{i:02d}.13"})
    competitor = make("competitor", {"name": f"Rival {owner}"})
    make("competitor_product", {"name": f"Rival product {owner}", "competitor": competitor,
                                "our_product": product, "price": "1000.00"})
    contact = make("contact", {"full_name": f"Contact {owner}", "account": acc})
    make("contact_job_change", {"contact": contact, "job_title": "Buyer", "from_date": day})
    make("lead", {"company": f"Lead {owner}"})
    campaign = make("campaign", {"name": f"Campaign {owner}", "campaign_type": "seminar"})
    make("campaign_member", {"campaign": campaign, "account": acc})
    make("opportunity_competitor", {"opportunity": opp, "competitor": competitor})
    make("opportunity_stage_plan", {"opportunity": opp, "stage": "proposal",
                                    "planned_start": day, "planned_end": later})
    make("activity", {"subject": f"Call {owner}", "kind": "call"})
    make("note", {"body": f"Note {owner}", "regarding": {"entity": "account", "id": acc}})
    make("sales_target", {"name": f"Target {owner}", "period_start": day, "period_end": later,
                          "target_value": "100", "target_department": dept})
    quote = make("quote", {"name": f"Quote {owner}", "account": acc})
    make("quote_line", {"quote": quote, "product": product, "quantity": "1",
                        "unit_price": f"9100{i:02d}.00", "unit_cost": f"3391{i:02d}.27"})
    contract = make("contract", {"name": f"Contract {owner}", "account": acc})
    make("contract_line", {"contract": contract, "product": product, "quantity": "1",
                           "unit_price": f"9200{i:02d}.00", "unit_cost": f"3392{i:02d}.29"})
    make("execution_plan_line", {"contract": contract, "kind": "installment",
                                 "description": "First installment", "due_date": later,
                                 "planned_amount": "1000.00"})
    make("invoice", {"contract": contract, "amount": "500.00"})
    make("receipt", {"contract": contract, "amount": "400.00"})
    queue = make("service_queue", {"name": f"Queue {owner}"})
    make("service_queue_member", {"queue": queue, "member": user})
    request = make("service_request", {"subject": f"Repair {owner}", "account": acc,
                                       "queue": queue})
    make("service_plan", {"subject": f"Inspection {owner}", "account": acc,
                          "visit_date": later})
    order = make("work_order", {"subject": f"Work {owner}", "account": acc,
                                "service_request": request})
    make("work_order_part", {"work_order": order, "product": product, "quantity": "1",
                             "unit_price": "10.00"})
    make("expense", {"subject": f"Travel {owner}", "category": "travel", "amount": "80.00"})
    make("expense_budget", {"name": f"Budget {owner}", "budget_department": dept,
                            "category": "travel", "period_start": day, "period_end": later,
                            "amount": "5000.00"})
    article = make("knowledge_article", {"title": f"Article {owner}", "category": "faq",
                                         "body": "How to"})
    make("knowledge_article_product", {"article": article, "product": product})
    announcement = make("announcement", {"title": f"Notice {owner}", "body": "Hello"})
    make("announcement_target", {"announcement": announcement, "branch": dept})
    make("announcement_read", {"announcement": announcement, "reader": user})
    return ids
