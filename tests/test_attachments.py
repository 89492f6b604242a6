"""Attachments (engine/runtime/files/attachments.py, engine/web/attachments.py): upload and
download through the API and the record page, the limits, sniffing, who may do what, file
fields, and purge — on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from starlette.testclient import TestClient

from engine.metadata import load_model
from engine.metadata.errors import ConfigErrors
from engine.runtime.access import SYSTEM
from engine.runtime.assembly import records_service
from engine.runtime.files.attachments import Attachments, clean_name
from engine.runtime.files.store import DiskStore
from engine.runtime.records import Records
from engine.runtime.records.timeline import timeline
from engine.runtime.records.unit import RecordChange, UnitOfWork
from engine.runtime.schema.tables import ATTACHMENT_TABLE
from engine.settings import WebSettings
from engine.web.app import create_app
from engine.web.attachments import content_disposition
from tests.access_helpers import Person, add_fields, place, user
from tests.conftest import Env, EnvFactory
from tests.db_templates import TEST_HASHER
from tests.web_helpers import page_token, sign_in

PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
LIMIT_KB = 10


@pytest.fixture
def config(config_dir: Path) -> Path:
    """The shipped config, opportunities with attachments and a file field, uploads of at
    most 10 KB."""
    path = config_dir / "entities" / "opportunity.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("entity: opportunity\n",
                                 "entity: opportunity\nattachments: true\n", 1),
                    encoding="utf-8")
    add_fields(config_dir, "opportunity",
               "signed_proposal: {type: file, label: {en: Signed proposal, zh: 签字方案}}")
    form = config_dir / "forms" / "opportunity.yaml"
    form.write_text(form.read_text(encoding="utf-8").replace(
        "      - next_step\n", "      - next_step\n      - signed_proposal\n", 1), encoding="utf-8")
    settings = config_dir / "settings.yaml"
    settings.write_text(settings.read_text(encoding="utf-8")
                        + f"\nattachments:\n  max_size_mb: {LIMIT_KB / 1024}\n",
                        encoding="utf-8")
    return config_dir


class World:
    def __init__(self, env: Env, files: Path) -> None:
        self.env = env
        self.files = files
        self.store = DiskStore(files)
        # the service as the app assembles it, storing into `files`
        self.records: Records = records_service(env.engine, env.model, files=self.store)
        self.attachments = Attachments(self.records, self.store)
        self.rep = user(env, "rep_one", "sales_rep")
        self.other = user(env, "rep_two", "sales_rep")
        account = place(env, "account", {"name": "Acme 华东"})
        self.deal = place(env, "opportunity", {"name": "Deal", "account": account["id"]},
                          owner=self.rep)
        self.base = f"/api/opportunity/{self.deal['id']}/attachments"

    def client(self, person: Person | None = None) -> TestClient:
        app = create_app(self.env.model, self.env.engine,
                         WebSettings.ephemeral(files_dir=str(self.files)),
                         password_hasher=TEST_HASHER)
        client = TestClient(app, raise_server_exceptions=False)
        if person is not None:
            client.headers["Authorization"] = f"Bearer {self.env.users.new_token(person.name)}"
        return client

    def blobs(self) -> list[Path]:
        return sorted(p for p in self.files.rglob("*") if p.is_file())

    def rows(self) -> int:
        t = self.records.schema.table(ATTACHMENT_TABLE)
        with self.env.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t)).scalar_one())


@pytest.fixture
def world(make_env: EnvFactory, config: Path, tmp_path: Path) -> World:
    return World(make_env(config), tmp_path / "files")


def post(client: TestClient, url: str, name: str, data: bytes,
         ctype: str = "application/octet-stream", **fields: str) -> Any:
    return client.post(url, files={"file": (name, data, ctype)}, data=fields)


# -- round trip ---------------------------------------------------------------------------

def test_upload_list_download_round_trip(world: World) -> None:
    api = world.client(world.rep)
    name = '报价 "v2".pdf'
    # the client calls it HTML: the bytes say PDF, and the bytes win
    added = post(api, world.base, name, PDF, "text/html")
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["file_name"] == name and body["content_type"] == "application/pdf"
    assert body["size"] == len(PDF) and body["created_by"] == world.rep.id
    assert added.headers["location"] == f"{world.base}/{body['id']}"
    listed = api.get(world.base).json()
    assert [a["id"] for a in listed["items"]] == [body["id"]] and listed["total"] == 1
    got = api.get(f"{world.base}/{body['id']}")
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["cache-control"] == "no-store"
    disposition = got.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    encoded = re.search(r"filename\*=UTF-8''(\S+)", disposition)
    assert encoded is not None and unquote(encoded.group(1)) == name
    # the record's history says who attached what
    history = api.get(f"/api/opportunity/{world.deal['id']}/history").json()["items"]
    assert any(h["field"] == "attachments" and h["new"] == {"id": body["id"],
                                                             "file_name": name}
               for h in history)
    assert len(world.blobs()) == 1
    assert api.delete(f"{world.base}/{body['id']}").status_code == 204
    assert api.get(world.base).json()["total"] == 0
    assert world.blobs() == [] and world.rows() == 0


def test_a_text_file_is_served_as_text_never_as_html(world: World) -> None:
    api = world.client(world.rep)
    added = post(api, world.base, "名单.csv", "名称,金额\n华东,100\n".encode(), "text/html")
    assert added.status_code == 201, added.text
    assert added.json()["content_type"] == "text/csv"
    got = api.get(f"{world.base}/{added.json()['id']}")
    assert got.headers["content-type"] == "text/csv; charset=utf-8"


# -- limits -------------------------------------------------------------------------------

def test_a_file_past_the_size_limit_is_refused_and_nothing_is_kept(world: World) -> None:
    api = world.client(world.rep)
    big = b"a" * (LIMIT_KB * 1024 + 1)
    refused = post(api, world.base, "big.txt", big, "text/plain")
    assert refused.status_code == 413, refused.text
    error = refused.json()["error"]
    assert error["code"] == "too_large" and "MB" in error["message"]
    assert world.rows() == 0 and world.blobs() == []
    at_limit = post(api, world.base, "ok.txt", b"a" * (LIMIT_KB * 1024), "text/plain")
    assert at_limit.status_code == 201, at_limit.text


@pytest.mark.parametrize(("name", "data"), [
    ("report.pdf", HTML),  # an HTML page renamed
    ("chart.png", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
    ("page.html", HTML),
    ("photo.pdf", PNG),  # a real PNG, but named as something else
    ("tool.exe", b"MZ\x90\x00" + b"\x00" * 60),
])
def test_a_file_of_another_kind_than_allowed_or_named_is_refused(world: World, name: str,
                                                                 data: bytes) -> None:
    api = world.client(world.rep)
    refused = post(api, world.base, name, data, "application/pdf")
    assert refused.status_code == 415, refused.text
    assert refused.json()["error"]["code"] == "unsupported_media_type"
    assert world.rows() == 0 and world.blobs() == []


def test_an_upload_must_be_multipart_with_a_file(world: World) -> None:
    api = world.client(world.rep)
    assert api.post(world.base, json={"file": "x"}).status_code == 415
    missing = api.post(world.base, data={"field": "signed_proposal"},
                       files={"other": ("a.pdf", PDF, "application/pdf")})
    assert missing.status_code == 400
    assert post(api, world.base, "empty.txt", b"").status_code == 422


# -- who may do what ----------------------------------------------------------------------

def test_a_reader_who_may_not_read_the_record_gets_404(world: World) -> None:
    owner = world.client(world.rep)
    added = post(owner, world.base, "a.pdf", PDF).json()
    stranger = world.client(world.other)
    for response in (stranger.get(world.base), stranger.get(f"{world.base}/{added['id']}"),
                     post(stranger, world.base, "b.pdf", PDF),
                     # refused before the body is read: 404, not the size limit's 413
                     post(stranger, world.base, "big.txt", b"a" * (LIMIT_KB * 1024 + 10)),
                     stranger.delete(f"{world.base}/{added['id']}")):
        assert response.status_code == 404, response.text
    assert world.rows() == 1


def test_a_reader_who_may_not_update_may_download_but_not_upload(world: World) -> None:
    world.records.set_team_member(SYSTEM, "opportunity", world.deal["id"], world.other.id,
                                  "read")
    added = post(world.client(world.rep), world.base, "a.pdf", PDF).json()
    reader = world.client(world.other)
    assert reader.get(world.base).json()["total"] == 1
    assert reader.get(f"{world.base}/{added['id']}").content == PDF
    assert post(reader, world.base, "b.pdf", PDF).status_code == 403
    assert post(reader, world.base, "big.txt", b"a" * (LIMIT_KB * 1024 + 10)).status_code == 403
    assert reader.delete(f"{world.base}/{added['id']}").status_code == 403
    assert world.rows() == 1 and len(world.blobs()) == 1


def test_an_attachment_of_another_record_is_not_found_through_this_one(world: World) -> None:
    api = world.client(world.rep)
    other = place(world.env, "opportunity", {"name": "Other",
                                             "account": world.deal["account"]}, owner=world.rep)
    added = post(api, f"/api/opportunity/{other['id']}/attachments", "a.pdf", PDF).json()
    assert api.get(f"{world.base}/{added['id']}").status_code == 404


def test_an_entity_without_attachments_takes_none(world: World) -> None:
    api = world.client(world.rep)
    account = world.deal["account"]
    assert post(api, f"/api/account/{account}/attachments", "a.pdf", PDF).status_code == 404


# -- the record page ----------------------------------------------------------------------

def test_the_page_upload_needs_the_csrf_token(world: World) -> None:
    page = world.client()
    assert sign_in(page, "rep_one", "a-password").status_code == 303
    url = f"/e/opportunity/{world.deal['id']}/attachments"
    refused = post(page, url, "a.pdf", PDF)
    assert refused.status_code == 403
    assert world.rows() == 0
    token = page_token(page, f"/e/opportunity/{world.deal['id']}")
    sent = page.post(url, files={"file": ("a.pdf", PDF, "application/pdf")},
                     headers={"X-CSRF-Token": token, "HX-Request": "true"})
    assert sent.status_code == 200, sent.text
    assert "a.pdf" in sent.text and 'id="attachments"' in sent.text
    assert f"{len(PDF)} B" in sent.text and "At most 0.01 MB." in sent.text
    assert world.rows() == 1
    panel = page.get(url, headers={"HX-Request": "true"})
    assert "a.pdf" in panel.text
    aid = world.attachments.list_files(world.rep, "opportunity", world.deal["id"])[0].id
    assert page.get(f"{url}/{aid}").content == PDF
    detail = page.get(f"/e/opportunity/{world.deal['id']}")
    assert f'hx-get="{url}"' in detail.text
    removed = page.post(f"{url}/{aid}/remove", data={"csrf_token": token},
                        follow_redirects=False)
    assert removed.status_code == 303 and world.rows() == 0


# -- file fields --------------------------------------------------------------------------

def test_an_upload_for_a_file_field_sets_it(world: World) -> None:
    api = world.client(world.rep)
    first = post(api, world.base, "v1.pdf", PDF, field="signed_proposal").json()
    deal = api.get(f"/api/opportunity/{world.deal['id']}").json()
    assert deal["signed_proposal"] == first["id"] and first["field"] == "signed_proposal"
    blank = api.get("/api/opportunity?signed_proposal__blank=false").json()
    assert [d["id"] for d in blank["items"]] == [world.deal["id"]]
    # a new file for the field replaces the old one, whose content goes
    second = post(api, world.base, "v2.pdf", PDF + b"% v2\n", field="signed_proposal").json()
    deal = api.get(f"/api/opportunity/{world.deal['id']}").json()
    assert deal["signed_proposal"] == second["id"]
    assert [a["id"] for a in api.get(world.base).json()["items"]] == [second["id"]]
    assert len(world.blobs()) == 1
    # the field holds only an attachment of its own record
    other = place(world.env, "opportunity", {"name": "Other",
                                             "account": world.deal["account"]}, owner=world.rep)
    foreign = post(api, f"/api/opportunity/{other['id']}/attachments", "o.pdf", PDF).json()
    patched = api.patch(f"/api/opportunity/{world.deal['id']}",
                        json={"version": deal["version"], "signed_proposal": foreign["id"]})
    assert patched.status_code == 422
    assert "signed_proposal" in patched.json()["error"]["fields"]
    # removing the file blanks the field
    assert api.delete(f"{world.base}/{second['id']}").status_code == 204
    assert api.get(f"/api/opportunity/{world.deal['id']}").json()["signed_proposal"] is None
    assert post(api, world.base, "x.pdf", PDF, field="name").status_code == 422


# -- the write pipeline and purge ---------------------------------------------------------

def test_a_rolled_back_upload_leaves_no_row_and_no_blob(world: World) -> None:
    def refuse(_unit: UnitOfWork, changes: Any) -> None:
        if any(c.action == "attachment" for c in changes):
            raise RuntimeError("a hook failed")

    world.records.hooks.on_before_commit("refuse", refuse)
    writer = world.attachments.receive()
    writer.write(PDF)
    with pytest.raises(RuntimeError):
        world.attachments.add(world.rep, "opportunity", world.deal["id"], "a.pdf", writer)
    assert world.rows() == 0 and world.blobs() == []


def _attach(world: World, record_id: int, data: bytes) -> int:
    writer = world.attachments.receive()
    writer.write(data)
    return world.attachments.add(SYSTEM, "opportunity", record_id, "a.pdf", writer).id


def test_the_timeline_shows_a_file_once_and_its_removal_as_a_change(world: World) -> None:
    first = _attach(world, world.deal["id"], PDF)
    items = timeline(world.records, SYSTEM, "opportunity", world.deal["id"]).items
    # the upload is the file item (with its link), not also a change of "Attachments"
    assert [(i.kind, i.file_id) for i in items if i.kind == "file"] == [("file", first)]
    assert [i for i in items if i.action == "attachment"] == []
    world.attachments.remove(SYSTEM, "opportunity", world.deal["id"], first)
    items = timeline(world.records, SYSTEM, "opportunity", world.deal["id"]).items
    assert [i for i in items if i.kind == "file"] == []
    assert [(i.kind, i.fields) for i in items if i.action == "attachment"] == [
        ("change", ("attachments",))]


def test_purge_deletes_the_rows_and_a_blob_only_when_no_row_holds_it(world: World) -> None:
    records = world.records
    other = place(world.env, "opportunity", {"name": "Other",
                                             "account": world.deal["account"]})
    _attach(world, world.deal["id"], PDF)
    _attach(world, other["id"], PDF)  # the same content: one blob
    assert world.rows() == 2 and len(world.blobs()) == 1
    records.delete(SYSTEM, "opportunity", world.deal["id"])
    # a purge that rolls back deletes nothing, on disk either
    with pytest.raises(RuntimeError), records.unit(SYSTEM) as u:
        records.purge(SYSTEM, "opportunity", world.deal["id"], unit=u)
        raise RuntimeError("changed my mind")
    assert world.rows() == 2 and len(world.blobs()) == 1
    records.purge(SYSTEM, "opportunity", world.deal["id"])
    assert world.rows() == 1 and len(world.blobs()) == 1  # the other record still holds it
    records.delete(SYSTEM, "opportunity", other["id"])
    seen: list[RecordChange] = []
    records.hooks.on_after_commit("seen", seen.extend)
    records.purge(SYSTEM, "opportunity", other["id"])
    assert world.rows() == 0 and world.blobs() == []
    assert [c.action for c in seen if c.entity == "opportunity"] == ["purge"]


def test_a_dry_run_purge_keeps_everything(world: World) -> None:
    _attach(world, world.deal["id"], PDF)
    world.records.delete(SYSTEM, "opportunity", world.deal["id"])
    world.records.dry_run(SYSTEM, lambda u: world.records.purge(
        SYSTEM, "opportunity", world.deal["id"], unit=u))
    assert world.rows() == 1 and len(world.blobs()) == 1


# -- file names ---------------------------------------------------------------------------

@given(st.text(max_size=400))
def test_a_file_name_is_cleaned_and_survives_the_header(name: str) -> None:
    clean = clean_name(name)
    assert clean and len(clean) <= 255
    assert "/" not in clean and "\\" not in clean
    assert not any(ord(ch) < 32 or 0x7f <= ord(ch) < 0xa0 for ch in clean)
    assert clean == clean.strip() and clean not in (".", "..")
    assert clean_name(clean) == clean
    header = content_disposition(clean)
    header.encode("latin-1")  # an HTTP header holds it as it is
    encoded = re.search(r"filename\*=UTF-8''(\S+)$", header)
    assert encoded is not None and unquote(encoded.group(1)) == clean
    fallback = re.search(r'filename="([^"]*)";', header)
    assert fallback is not None and "\\" not in fallback.group(1)


def test_a_path_in_a_file_name_is_dropped() -> None:
    assert clean_name("../../etc/passwd") == "passwd"
    assert clean_name("C:\\Users\\x\\合同.pdf") == "合同.pdf"
    assert clean_name('a"b.pdf') == 'a"b.pdf'


def test_a_new_record_has_no_file_yet(world: World) -> None:
    api = world.client(world.rep)
    made = api.post("/api/opportunity", json={"name": "New", "account": world.deal["account"],
                                              "signed_proposal": 1})
    assert made.status_code == 422
    assert "uploading a file" in made.json()["error"]["fields"]["signed_proposal"]
    result = world.records.bulk_create(SYSTEM, "opportunity", [
        {"name": "A", "account": world.deal["account"], "signed_proposal": 1},
        {"name": "B", "account": world.deal["account"]}])
    assert [i for i, _ in result.errors] == [0] and len(result.ids) == 1


def test_pages_show_a_file_field_as_its_file(world: World) -> None:
    api = world.client(world.rep)
    added = post(api, world.base, "签字版.pdf", PDF, field="signed_proposal").json()
    page = world.client()
    assert sign_in(page, "rep_one", "a-password").status_code == 303
    detail = page.get(f"/e/opportunity/{world.deal['id']}").text
    assert f'href="/files/{added["id"]}"' in detail and "签字版.pdf" in detail
    form = page.get(f"/e/opportunity/{world.deal['id']}/edit").text
    assert re.search(rf'type="hidden" id="f-signed_proposal" name="signed_proposal" '
                     rf'value="{added["id"]}"', form)
    assert page.get(f"/files/{added['id']}").content == PDF
    history = detail[detail.index('id="history"'):]
    assert "Files changed" in history and "签字版.pdf" in history
    stranger = world.client()
    assert sign_in(stranger, "rep_two", "a-password").status_code == 303
    assert stranger.get(f"/files/{added['id']}").status_code == 404
    assert stranger.get(f"/e/opportunity/{world.deal['id']}/attachments").status_code == 404


def test_the_openapi_document_describes_the_attachment_routes(world: World) -> None:
    doc = world.client(world.rep).get("/openapi.json").json()
    files = "/api/opportunity/{record_id}/attachments"
    assert set(doc["paths"][files]) == {"get", "post"}
    assert set(doc["paths"][files + "/{attachment_id}"]) == {"get", "delete"}
    upload = doc["paths"][files]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {"413", "415"} <= set(upload["responses"])
    assert "/api/account/{record_id}/attachments" not in doc["paths"]
    schema = doc["components"]["schemas"]["Opportunity"]["properties"]["signed_proposal"]
    assert "attachment" in schema["anyOf"][0]["description"]


def test_settings_name_an_unknown_type(config: Path) -> None:
    settings = config / "settings.yaml"
    settings.write_text(settings.read_text(encoding="utf-8")
                        + "  allowed_types: [application/pdf, text/htm]\n", encoding="utf-8")
    with pytest.raises(ConfigErrors) as info:
        load_model(config)
    text = str(info.value)
    assert "settings.yaml:" in text and "'text/htm' is not a content type" in text


def test_the_files_folder_comes_from_the_environment() -> None:
    key = {"CRM_SECRET_KEY": "k" * 32}
    assert WebSettings.from_env(key).files_dir == "data/files"
    assert WebSettings.from_env({**key, "CRM_FILES_DIR": "/srv/crm/files"}).files_dir \
        == "/srv/crm/files"
