"""Saved import mappings (engine/runtime/imports/saved_mappings.py): per entity and author,
shared or not, offered again for a file with like headers, never revealing hidden fields."""



from __future__ import annotations

import pytest

from engine.runtime.errors import Forbidden, Invalid, NotFound
from engine.runtime.imports.mapping import ColumnMap
from engine.runtime.imports.saved_mappings import (
    MAX_SAVED,
    best_saved_mapping,
    delete_mapping,
    get_mapping,
    match_share,
    save_mapping,
    saved_mappings,
)
from tests.conftest import Env

HEADERS = ["客户名称", "城市", "年营业额", "备注"]
MAPPING = ColumnMap({"客户名称": "name", "城市": "city", "年营业额": "annual_revenue",
                     "备注": None}, "account")


def test_save_list_replace_and_delete(env: Env) -> None:
    admin = env.admin.actor()
    saved = save_mapping(env.records, admin, "account", " ERP 导出 ", MAPPING, HEADERS)
    assert (saved.name, saved.entity, saved.shared) == ("ERP 导出", "account", False)
    assert saved.mapping.columns == MAPPING.columns and saved.headers == tuple(HEADERS)
    again = save_mapping(env.records, admin, "account", "ERP 导出",
                         ColumnMap({"客户名称": "name"}, "account", "name"), ["客户名称"],
                         shared=True)
    assert again.id == saved.id and again.shared and again.mapping.key == "name"
    assert [s.id for s in saved_mappings(env.records, admin, "account")] == [saved.id]
    assert saved_mappings(env.records, admin, "contact") == []
    delete_mapping(env.records, admin, saved.id)
    with pytest.raises(NotFound):
        get_mapping(env.records, admin, saved.id)


def test_bad_names_and_fields_are_refused(env: Env) -> None:
    admin = env.admin.actor()
    with pytest.raises(Invalid, match="a mapping needs a name of 1 to 100 characters"):
        save_mapping(env.records, admin, "account", "  ", MAPPING, HEADERS)
    with pytest.raises(Invalid, match="a mapping needs a name"):
        save_mapping(env.records, admin, "account", "x" * 101, MAPPING, HEADERS)
    with pytest.raises(Invalid, match="has no field nope"):
        save_mapping(env.records, admin, "account", "x", ColumnMap({"a": "nope"}, "account"),
                     ["a"])


def test_personal_and_shared_mappings_per_user(env: Env) -> None:
    admin = env.admin.actor()
    rep = env.users.add("rep", ["sales_rep"]).actor()
    partner = env.users.add("partner1", ["partner"]).actor()
    mine = save_mapping(env.records, admin, "account", "mine", MAPPING, HEADERS)
    shared = save_mapping(env.records, admin, "account", "shared", MAPPING, HEADERS,
                          shared=True)
    assert [s.name for s in saved_mappings(env.records, rep, "account")] == ["shared"]
    with pytest.raises(NotFound):
        get_mapping(env.records, rep, mine.id)
    with pytest.raises(Forbidden):
        delete_mapping(env.records, rep, shared.id)
    # the partner may create accounts but not see their annual revenue: the shared mapping
    # reaches them without that field
    seen = get_mapping(env.records, partner, shared.id)
    assert seen.mapping.columns == {"客户名称": "name", "城市": "city", "年营业额": None,
                                    "备注": None}
    # a user who may not create opportunities sees no shared opportunity mapping
    marketing = env.users.add("mkt", ["marketing"]).actor()
    save_mapping(env.records, admin, "opportunity", "deals",
                 ColumnMap({"名称": "name"}, "opportunity"), ["名称"], shared=True)
    assert saved_mappings(env.records, marketing, "opportunity") == []


def test_best_saved_mapping_matches_headers(env: Env) -> None:
    admin = env.admin.actor()
    rep = env.users.add("rep", ["sales_rep"]).actor()
    assert best_saved_mapping(env.records, admin, "account", HEADERS) is None
    other = save_mapping(env.records, admin, "account", "other",
                         ColumnMap({"Name": "name"}, "account"), ["Name", "City", "Phone"])
    erp = save_mapping(env.records, admin, "account", "erp", MAPPING, HEADERS, shared=True)
    found = best_saved_mapping(env.records, admin, "account", ["*客户名称", "城市", "年营业额"])
    assert found is not None and found.id == erp.id
    found = best_saved_mapping(env.records, admin, "account", ["name", "city", "phone", "x"])
    assert found is not None and found.id == other.id
    assert best_saved_mapping(env.records, admin, "account", ["a", "b", "城市"]) is None
    # the rep's own mapping wins over the shared one at the same match
    own = save_mapping(env.records, rep, "account", "mine", MAPPING, HEADERS)
    found = best_saved_mapping(env.records, rep, "account", HEADERS)
    assert found is not None and found.id == own.id


def test_match_share() -> None:
    assert match_share(["A", "b"], ["a", "B"]) == 1.0
    assert match_share([], []) == 0.0
    assert match_share(["a"], ["b"]) == 0.0


def test_saved_mappings_are_bounded_per_author(env: Env,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.runtime.imports.saved_mappings as saved
    monkeypatch.setattr(saved, "MAX_SAVED", 2)
    admin = env.admin.actor()
    save_mapping(env.records, admin, "account", "a", MAPPING, HEADERS)
    save_mapping(env.records, admin, "account", "b", MAPPING, HEADERS)
    save_mapping(env.records, admin, "account", "b", MAPPING, HEADERS)  # a replacement
    with pytest.raises(Invalid, match="you have 2 saved mappings"):
        save_mapping(env.records, admin, "account", "c", MAPPING, HEADERS)
    assert MAX_SAVED == 100
