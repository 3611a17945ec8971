"""REST endpoints for the runs panel, under ``<base_url>/ftkit/``, behind Jupyter's own authentication.

GET  ftkit/runs               {"runs_dir": str, "runs": [row, ...]} newest first
GET  ftkit/runs/<id>          row + "path", "config", "summary"
POST ftkit/runs/<id>/stop     202 {"id", "status": "stopping"}; 409 when the run has ended, saying how
                              (a run whose process died is closed as failed first)
GET  ftkit/template           {"name": "quickstart.ipynb", "content": nbformat-4 JSON}

A row: id, status, method, task, model, best ({metric, value, step} or null),
started (epoch seconds), steps, max_steps, reason. Errors are JSON
``{"message": ...}``: 400 for an id that is not a run folder name, 404 for no such run.
"""
from __future__ import annotations

from pathlib import Path

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .runs import BadRunId, RunNotFound, RunRows, request_stop, run_path
from .template import quickstart


class _Base(APIHandler):
    def initialize(self, rows: RunRows) -> None:
        self.rows = rows

    def run_folder(self, run_id: str) -> Path:
        try:
            return run_path(self.rows.root, run_id)
        except BadRunId as exc:
            raise web.HTTPError(400, str(exc)) from None
        except RunNotFound as exc:
            raise web.HTTPError(404, str(exc)) from None


class RunsHandler(_Base):
    @web.authenticated
    def get(self) -> None:
        self.finish({"runs_dir": str(self.rows.root), "runs": self.rows.rows()})


class RunHandler(_Base):
    @web.authenticated
    def get(self, run_id: str) -> None:
        self.finish(self.rows.detail(self.run_folder(run_id)))


class StopHandler(_Base):
    @web.authenticated
    def post(self, run_id: str) -> None:
        path = self.run_folder(run_id)
        try:
            request_stop(path, self.rows.row(path))
        except ValueError as exc:
            raise web.HTTPError(409, str(exc)) from None
        self.set_status(202)
        self.finish({"id": path.name, "status": "stopping"})


class TemplateHandler(APIHandler):
    @web.authenticated
    def get(self) -> None:
        try:
            content = quickstart()
        except FileNotFoundError as exc:
            raise web.HTTPError(404, str(exc)) from None
        self.finish({"name": "quickstart.ipynb", "content": content})


def setup_handlers(web_app, runs_dir: Path) -> None:
    base = url_path_join(web_app.settings["base_url"], "ftkit")
    rows = {"rows": RunRows(Path(runs_dir))}
    web_app.add_handlers(".*$", [
        (url_path_join(base, r"runs/?"), RunsHandler, rows),
        (url_path_join(base, r"runs/(.+)/stop/?"), StopHandler, rows),
        (url_path_join(base, r"runs/(.+?)/?"), RunHandler, rows),
        (url_path_join(base, r"template/?"), TemplateHandler),
    ])
