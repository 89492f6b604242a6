"""The import page of an entity: upload, mapping, check, import, progress, result.

`/e/<entity>/import` (for users who may create the entity's records; the list shows them an
Import button) takes a CSV or XLSX file (multipart through engine/web/uploads.py: the size
limit, then a look at the first bytes) into the server's import folder, private to the user
who sent it and never served back. The mapping step `/e/<entity>/import/u/<token>` shows
each column with a few sample values and a select of the fields the user may write (the
best saved mapping for these headers, else the guess by name or label), the key, the
duplicates policy and "save this mapping as…". "Check" opens a dry-run job, "Import" a real
one; both run in the background (engine/runtime/imports/background.py) and
`/e/<entity>/import/jobs/<id>` shows the job: a progress bar htmx refreshes every second
(rows done of total, rows/s, ETA), then the counts, the first problems, the rows that look
like existing records with a choice each (skip / update / create anyway), the error file to
download (its user or an admin; anyone else gets 404) and Resume for an interrupted job.
Every POST carries the page's CSRF token (the guard, engine/web/security.py).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from collections.abc import Collection, Generator, Mapping
from contextlib import closing, nullcontext
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from engine.messages import msg
from engine.metadata import Model
from engine.metadata.model import Entity, Field
from engine.metadata.roles import Scope
from engine.runtime.access import Actor
from engine.runtime.errors import BadRequest, Forbidden, NotFound, RecordError
from engine.runtime.files.attachments import FileTooLarge, UnsupportedFile
from engine.runtime.files.store import DiskStore
from engine.runtime.imports import jobs as import_jobs
from engine.runtime.imports import mapping as import_mapping
from engine.runtime.imports.background import ImportRunner, Rate
from engine.runtime.imports.saved_mappings import best_saved_mapping, save_mapping
from engine.runtime.imports.sources import open_source
from engine.runtime.records import Records
from engine.web.attachments import content_disposition
from engine.web.i18n import N_
from engine.web.pages.fields import entity_of
from engine.web.ui import PageFamily, Ui
from engine.web.uploads import read_upload
from engine.web.viewer import Viewer, require_viewer

SAMPLES = 3
RECENT = 10
FIRST_PROBLEMS = 20
DUPLICATE_ROWS = 200
"""Duplicate rows the check page offers a choice for; the rest follow the policy."""
EXTENSIONS = {".csv": "csv", ".txt": "csv", ".xlsx": "xlsx"}
STATUS_LABELS = {"pending": N_("Waiting to start"), "running": N_("Running"),
                 "done": N_("Done"), "interrupted": N_("Interrupted"), "failed": N_("Failed")}
CHOICE_LABELS = {"skip": N_("Skip"), "update": N_("Update the existing record"),
                 "create": N_("Create anyway")}
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_COLUMN = re.compile(r"^col(\d{1,4})$")
_ROW = re.compile(r"^dup(\d{1,9})$")


@dataclass(frozen=True)
class Upload:
    """A file a user sent for import, kept in their folder until they import it."""

    token: str
    folder: Path
    file_name: str
    entity: str

    @property
    def path(self) -> Path:
        return self.folder / f"source.{EXTENSIONS[Path(self.file_name).suffix.lower()]}"


class Uploads:
    """The import folder: `<root>/<user id>/<token>/` holds a file and its meta.json."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def new(self, user_id: int, entity: str, file_name: str) -> Upload:
        token = secrets.token_urlsafe(18)
        folder = self.root / str(user_id) / token
        folder.mkdir(parents=True)
        (folder / "meta.json").write_text(json.dumps({"file_name": file_name,
                                                      "entity": entity}), "utf-8")
        return Upload(token, folder, file_name, entity)

    def get(self, user_id: int, entity: str, token: str) -> Upload:
        """The user's upload `token` for `entity`, or 404 (anyone else's is not there)."""
        folder = self.root / str(user_id) / token
        if not _TOKEN.match(token) or not (folder / "meta.json").is_file():
            raise NotFound(msg("no such upload; send the file again"))
        meta = json.loads((folder / "meta.json").read_text("utf-8"))
        if meta.get("entity") != entity:
            raise NotFound(msg("no such upload; send the file again"))
        return Upload(token, folder, str(meta["file_name"]), entity)

    def discard(self, upload: Upload) -> None:
        shutil.rmtree(upload.folder, ignore_errors=True)


def sniff(head: bytes, suffix: str) -> str | None:
    """Why the first bytes of a file named `*suffix` cannot be imported, or None.

    >>> sniff(b"PK\\x03\\x04...", ".xlsx") is None, sniff(b"name,city\\n", ".csv") is None
    (True, True)
    >>> sniff(b"\\x89PNG", ".csv")
    'binary'
    """
    kind = EXTENSIONS.get(suffix)
    if kind is None:
        return "type"
    if kind == "xlsx":
        return None if head.startswith(b"PK\x03\x04") else "not_xlsx"
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "binary"
    return None


class ImportPages(PageFamily):
    def __init__(self, model: Model, records: Records, ui: Ui, folder: Path,
                 runner: ImportRunner | None = None) -> None:
        super().__init__(model, records, ui)
        self.uploads = Uploads(folder / "uploads")
        self.store = DiskStore(folder / "incoming")
        self.runner = runner or ImportRunner(self._run)

    def routes(self) -> list[Route]:
        base = "/e/{entity}/import"
        return [
            Route(base, self.start, methods=["GET"]),
            Route(base, self.upload, methods=["POST"]),
            Route(base + "/u/{token}", self.mapping, methods=["GET"]),
            Route(base + "/u/{token}", self.submit, methods=["POST"]),
            Route(base + "/jobs/{job_id:id}", self.job_page, methods=["GET"]),
            Route(base + "/jobs/{job_id:id}/progress", self.progress, methods=["GET"]),
            Route(base + "/jobs/{job_id:id}/run", self.run_checked, methods=["POST"]),
            Route(base + "/jobs/{job_id:id}/resume", self.resume, methods=["POST"]),
            Route(base + "/jobs/{job_id:id}/errors", self.error_file, methods=["GET"]),
        ]

    def _page(self, request: Request, template: str, context: dict[str, Any], *,
              status: int = 200) -> Response:
        return self.ui.page(request, template, {**context, "status_labels": STATUS_LABELS,
                                                "choice_labels": CHOICE_LABELS},
                            status=status)

    # -- who may ---------------------------------------------------------------------------

    def _entity(self, request: Request, viewer: Viewer) -> Entity:
        entity = entity_of(self.model, request.path_params["entity"])
        policy = self.records.policy
        actor = viewer.user.actor()
        policy.require(actor, entity, "read")
        if policy.scope(actor, entity.name, "create") is Scope.NONE:
            raise Forbidden(msg("you may not create %(entity)s records",
                                entity=entity.name))
        return entity

    def writable(self, actor: Actor, entity: Entity) -> list[Field]:
        """The fields the actor may give a value from a file, in the entity's order."""
        names = import_mapping.writable_fields(self.records, actor, entity)
        return [f for f in entity.fields if f.name in names]

    def _job(self, viewer: Viewer, entity: Entity, job_id: int) -> import_jobs.Job:
        """The job, when it is the viewer's (or they are an admin) and of this entity."""
        job = import_jobs.get_job(self.records, viewer.user.actor(), job_id)
        if job.entity != entity.name:
            raise NotFound(msg("no import %(id)s", id=job_id))
        return job

    def view(self, job: import_jobs.Job) -> JobView:
        """What the page shows of a job: its status as the user should read it."""
        status = job.status
        if status == "cancelled" or (status in ("running", "pending")
                                     and not self.runner.running(job.id)):
            status = "interrupted"
        return JobView(job, status, self.runner.rate(job.id, job.rows_done, job.total_rows))

    # -- the background run ----------------------------------------------------------------

    def _run(self, actor: Actor, job_id: int, progress: Any, should_stop: Any) -> object:
        return import_jobs.run_job(self.records, actor, job_id,
                                   progress=lambda job: progress(job.rows_done),
                                   should_stop=should_stop)

    # -- step 1: the upload ----------------------------------------------------------------

    async def start(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = self._entity(request, viewer)
        return await self._start_page(request, viewer, entity)

    async def _start_page(self, request: Request, viewer: Viewer, entity: Entity,
                          error: RecordError | None = None) -> Response:
        recent = await run_in_threadpool(import_jobs.jobs_of, self.records,
                                         viewer.user.actor(), entity.name, limit=RECENT)
        return self._page(request, "import_start.html", {
            "entity": entity, "recent": [self.view(j) for j in recent],
            "max_mb": f"{limit_mb(self.model):g}",
            "error": error.message if error else None,
            "base": f"/e/{entity.name}/import"}, status=error.status if error else 200)

    async def upload(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = self._entity(request, viewer)
        limit = int(limit_mb(self.model) * 1024 * 1024)
        try:
            sent = await read_upload(request, lambda: self.store.writer(limit), limit,
                                     lambda: FileTooLarge(msg(
                                         "the file is larger than the limit of %(limit)s MB",
                                         limit=f"{limit_mb(self.model):g}")))
        except RecordError as exc:
            return await self._start_page(request, viewer, entity, exc)
        try:
            kept = await run_in_threadpool(self._keep, viewer, entity, sent, limit)
        except RecordError as exc:
            return await self._start_page(request, viewer, entity, exc)
        finally:
            sent.discard()
        return _go(request, f"/e/{entity.name}/import/u/{kept.token}")

    def _keep(self, viewer: Viewer, entity: Entity, sent: Any, limit: int) -> Upload:
        file_name = (sent.file_name or "").replace("\\", "/").rsplit("/", 1)[-1][:200]
        suffix = Path(file_name).suffix.lower()
        with sent.blob.reader() as f:
            head = f.read(4096)
        if sent.blob.size == 0:
            raise BadRequest(msg("the file is empty"))
        problem = sniff(head, suffix)
        if problem == "type":
            raise UnsupportedFile(msg("import a CSV or Excel (.xlsx) file; %(name)s is "
                                    "neither", name=file_name or "?"))
        if problem is not None:
            raise UnsupportedFile(msg("%(name)s is not a readable CSV or Excel (.xlsx) file",
                                    name=file_name))
        upload = self.uploads.new(viewer.user.id, entity.name, file_name)
        sent.blob.finish()
        with sent.blob.reader() as f, upload.path.open("wb") as out:
            shutil.copyfileobj(f, out)
        try:
            source = open_source(upload.path, max_bytes=limit)
            if not [h for h in source.headers if h]:
                raise BadRequest(msg("the file has no header row"))
        except RecordError:
            self.uploads.discard(upload)
            raise
        except Exception as exc:  # the reader's own errors: a broken file
            self.uploads.discard(upload)
            raise UnsupportedFile(msg("%(name)s could not be read: %(why)s", name=file_name,
                                    why=str(exc)[:200])) from None
        return upload

    # -- step 2: the mapping ---------------------------------------------------------------

    async def mapping(self, request: Request, error: RecordError | None = None,
                      chosen: Mapping[str, str] | None = None) -> Response:
        viewer = require_viewer(request)
        entity = self._entity(request, viewer)
        upload = self.uploads.get(viewer.user.id, entity.name, request.path_params["token"])
        context = await run_in_threadpool(self._mapping_context, viewer, entity, upload)
        if chosen is not None:
            context["chosen"] = dict(chosen)
        context["error"] = error.message if error else None
        context["field_errors"] = error.fields if error else {}
        return self._page(request, "import_mapping.html", context,
                            status=error.status if error else 200)

    def _mapping_context(self, viewer: Viewer, entity: Entity, upload: Upload
                         ) -> dict[str, Any]:
        actor = viewer.user.actor()
        source = open_source(upload.path)
        headers = list(source.headers)
        samples: list[list[str]] = [[] for _ in headers]
        for n, row in enumerate(source.rows()):
            if n >= SAMPLES:
                break
            for i, _ in enumerate(headers):
                value = row[i] if i < len(row) else None
                if value not in (None, ""):
                    samples[i].append(str(value)[:60])
        writable = self.writable(actor, entity)
        names = {f.name for f in writable}
        guessed, saved = first_mapping(self.records, actor, entity, headers, names)
        chosen = {f"col{i}": (guessed.get(h) or "") for i, h in enumerate(headers)}
        return {"entity": entity, "upload": upload, "columns": list(zip(headers, samples,
                                                                         strict=True)),
                "fields": writable, "chosen": chosen, "saved": saved,
                "keys": [f for f in writable if f.unique or getattr(f, "external_id", False)],
                "choices": import_jobs.ON_DUPLICATE, "base": f"/e/{entity.name}/import"}

    async def submit(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = self._entity(request, viewer)
        upload = self.uploads.get(viewer.user.id, entity.name, request.path_params["token"])
        form = {k: str(v) for k, v in (await request.form()).items()}
        try:
            job_id = await run_in_threadpool(self._open, viewer, entity, upload, form)
        except RecordError as exc:
            if exc.status == 404:
                raise
            return await self.mapping(request, exc, form)
        return _go(request, f"/e/{entity.name}/import/jobs/{job_id}")

    def _options(self, actor: Actor, entity: Entity, headers: list[str],
                 form: Mapping[str, str], *, dry_run: bool,
                 language: str) -> import_jobs.ImportOptions:
        names = {f.name for f in self.writable(actor, entity)}
        columns: dict[str, str | None] = {}
        for name, value in form.items():
            found = _COLUMN.match(name)
            if found is None:
                continue
            i = int(found.group(1))
            if i >= len(headers):
                raise BadRequest(msg("the mapping names a column the file does not have"))
            if value and value not in names:
                raise BadRequest(msg("%(field)s is not a field you may import into",
                                     field=value[:80]), {name: msg("not a field you may "
                                                                   "write")})
            columns[headers[i]] = value or None
        if not any(columns.values()):
            raise BadRequest(msg("map at least one column to a field"))
        key = form.get("key") or None
        if key is not None and key not in names:
            raise BadRequest(msg("%(field)s is not a field you may import into",
                                 field=key[:80]))
        return import_jobs.ImportOptions(entity=entity.name,
                                         mapping=column_map(entity, columns, key), key=key,
                                         on_duplicate=on_duplicate_of(form), choices={},
                                         dry_run=dry_run, language=language)

    def _open(self, viewer: Viewer, entity: Entity, upload: Upload,
              form: Mapping[str, str]) -> int:
        actor = viewer.user.actor()
        headers = list(open_source(upload.path).headers)
        dry_run = form.get("action") != "import"
        options = self._options(actor, entity, headers, form, dry_run=dry_run,
                                language=viewer.language)
        save_as = (form.get("save_as") or "").strip()
        if save_as:
            assert options.mapping is not None
            save_mapping(self.records, actor, entity.name, save_as[:100], options.mapping,
                         headers)
        job = import_jobs.open_job(self.records, actor, upload.path, options,
                                   file_name=upload.file_name)
        self.runner.start(actor, job.id)
        return job.id

    # -- step 3: the job -------------------------------------------------------------------

    async def job_page(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = self._entity(request, viewer)
        context = await run_in_threadpool(self._job_context, viewer, entity,
                                          int(request.path_params["job_id"]))
        return self._page(request, "import_job.html", context)

    async def progress(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = self._entity(request, viewer)
        context = await run_in_threadpool(self._job_context, viewer, entity,
                                          int(request.path_params["job_id"]))
        return self._page(request, "import_job_state.html", context)

    def _job_context(self, viewer: Viewer, entity: Entity, job_id: int) -> dict[str, Any]:
        job = self._job(viewer, entity, job_id)
        view = self.view(job)
        problems: list[str] = []
        error_file = job.error_file if view.finished else None
        if error_file is not None:  # its first rows: each ends with its problems
            problems = first_problems(error_file)
        return {"entity": entity, "job": view, "problems": problems,
                "duplicates": job.duplicates[:DUPLICATE_ROWS], "choices": import_jobs.ON_DUPLICATE,
                "mine": job.user_id == viewer.user.id, "base": f"/e/{entity.name}/import"}

    async def run_checked(self, request: Request) -> Response:
        """Import for real what a finished check (dry run) looked at, with the choices made
        for its duplicate rows."""
        viewer = require_viewer(request)
        entity = self._entity(request, viewer)
        form = {k: str(v) for k, v in (await request.form()).items()}
        checked = int(request.path_params["job_id"])
        job_id = await run_in_threadpool(self._run_checked, viewer, entity, checked, form)
        return _go(request, f"/e/{entity.name}/import/jobs/{job_id}")

    def _run_checked(self, viewer: Viewer, entity: Entity, checked: int,
                     form: Mapping[str, str]) -> int:
        actor = viewer.user.actor()
        job = self._job(viewer, entity, checked)
        if job.user_id != actor.user_id:
            raise NotFound(msg("no import %(id)s", id=checked))
        if not job.dry_run or job.status != "done":
            raise BadRequest(msg("only a finished check can be imported"))
        choices: dict[int, str] = {}
        for key, value in form.items():
            found = _ROW.match(key)
            if found is not None:
                if value not in import_jobs.ON_DUPLICATE:
                    raise BadRequest(msg("choose skip, update or create for row %(row)s",
                                         row=found.group(1)))
                choices[int(found.group(1))] = value
        options = job.options
        on_duplicate = on_duplicate_of(options)
        real = import_jobs.open_job(
            self.records, actor, Path(job.file_path),
            import_jobs.ImportOptions(entity=entity.name,
                                      mapping=job.mapping,
                                      key=options.get("key"), on_duplicate=on_duplicate,
                                      choices=choices, dry_run=False,
                                      language=viewer.language),
            file_name=job.file_name)
        self.runner.start(actor, real.id)
        return real.id

    async def resume(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = self._entity(request, viewer)
        job_id = int(request.path_params["job_id"])

        def resumed() -> None:
            actor = viewer.user.actor()
            job = self._job(viewer, entity, job_id)
            if job.user_id != actor.user_id:
                raise NotFound(msg("no import %(id)s", id=job_id))
            if job.status == "done" or self.runner.running(job_id):
                raise BadRequest(msg("this import has finished or is running"))
            self.runner.start(actor, job_id)

        await run_in_threadpool(resumed)
        return _go(request, f"/e/{entity.name}/import/jobs/{job_id}")

    async def error_file(self, request: Request) -> Response:
        viewer = require_viewer(request)
        entity = self._entity(request, viewer)
        job_id = int(request.path_params["job_id"])
        job = await run_in_threadpool(self._job, viewer, entity, job_id)
        path = job.error_file
        if path is None:
            raise NotFound(msg("import %(id)s has no error file", id=job_id))
        stem = Path(job.file_name or "import").stem
        name = f"{stem}-errors{path.suffix}"
        return FileResponse(path, headers={"Content-Disposition": content_disposition(name),
                                           "X-Content-Type-Options": "nosniff"},
                            media_type=_media(path.suffix))


@dataclass(frozen=True)
class JobView:
    """A job as the page shows it: `status` is `interrupted` for a job that stopped before
    its end (cancelled, or its server stopped), and the rate while it runs here."""

    job: import_jobs.Job
    status: str
    rate: Rate

    def __getattr__(self, name: str) -> Any:
        return getattr(self.job, name)

    @property
    def polling(self) -> bool:
        return self.status in ("running", "pending")

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")


# -- the mapping module's calls (engine/runtime/imports/mapping.py) ----------------------


def first_problems(error_file: Path) -> list[str]:
    """The problems of the first rows of an error file (its last column); none when the
    file cannot be read as an import file (the page shows the job all the same)."""
    try:
        rows = open_source(error_file).rows()
        with closing(rows) if isinstance(rows, Generator) else nullcontext():
            return [str(cells[-1]) for cells in islice(rows, FIRST_PROBLEMS) if cells]
    except (RecordError, OSError):
        return []


def limit_mb(model: Model) -> float:
    """The largest file an import may read (settings.yaml `imports.max_size_mb`)."""
    return model.settings.import_max_mb


def first_mapping(records: Records, actor: Actor, entity: Entity, headers: list[str],
                  writable: Collection[str]) -> tuple[dict[str, str | None], bool]:
    """The mapping the page proposes: {header: field or None}, and whether it is a saved
    one (the best saved mapping for these headers — its columns, the rest guessed — else
    the guess by name or label)."""
    guessed = import_mapping.guess_mapping(records.model, entity, headers, writable=writable)
    saved = best_saved_mapping(records, actor, entity.name, headers)
    if saved is None:
        return dict(guessed.columns), False
    merged = saved.mapping.for_headers(headers, guessed)
    return {h: (f if f in writable else None) for h, f in merged.columns.items()
            if h in headers}, True


def column_map(entity: Entity, columns: Mapping[str, str | None],
               key: str | None) -> import_mapping.ColumnMap:
    """The mapping module's ColumnMap of {header: field or None} (every column named, so
    none is guessed again)."""
    return import_mapping.ColumnMap(dict(columns), entity.name, key)


def on_duplicate_of(values: Mapping[str, Any]) -> import_jobs.OnDuplicate:
    """The duplicates policy a form (or a job's options) names: skip by default."""
    value = values.get("on_duplicate") or "skip"
    for choice in import_jobs.ON_DUPLICATE:
        if value == choice:
            return choice
    raise BadRequest(msg("choose skip, update or create for duplicates"),
                     {"on_duplicate": msg("must be skip, update or create")})


def _media(suffix: str) -> str:
    if suffix.lower() == ".xlsx":
        return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return "text/csv; charset=utf-8"


def _go(request: Request, path: str) -> Response:
    """To `path`: htmx follows HX-Redirect, a plain form the 303."""
    if "hx-request" in request.headers:
        return Response(status_code=204, headers={"HX-Redirect": path})
    return RedirectResponse(path, status_code=303)
