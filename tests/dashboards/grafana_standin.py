"""A local HTTP stand-in for the parts of Grafana's HTTP API that `dashboards push` uses.

A live Grafana cannot run on these machines (no installable server, no network beyond the
package registries), so `push` is tested against this: it records every request and answers
like Grafana 11.6 would, after checking each body against the provisioning API's contract
(required fields, enums, references between objects: a rule's folder and datasource exist, a
policy's receivers are contact points, the condition names a query). A contract violation is
answered 400 with the reason, the way Grafana rejects it, so the client sees it as an error.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CONTACT_TYPES = {"webhook", "slack", "pagerduty", "email"}
DEFAULT_RECEIVER = "grafana-default-email"  # the contact point every Grafana org starts with
STATES = {"noDataState": {"Alerting", "NoData", "OK"}, "execErrState": {"OK", "Alerting", "Error"}}


class ContractError(Exception):
    pass


def need(condition: bool, message: str) -> None:
    if not condition:
        raise ContractError(message)


ORG_SCOPED = ("folders", "datasources", "dashboards", "contact_points", "policy", "policy_headers", "rules", "groups")


def _fresh_org() -> dict[str, Any]:
    return {
        "folders": {},
        "datasources": {},
        "dashboards": {},
        "contact_points": {},
        # A fresh organisation's tree: everything to the built-in default email contact point.
        "policy": {"receiver": DEFAULT_RECEIVER, "group_by": ["grafana_folder", "alertname"]},
        "policy_headers": {},
        "rules": {},
        "groups": {},
    }


class GrafanaStandIn:
    def __init__(self, user: str = "admin", password: str = "admin") -> None:
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.requests: list[tuple[str, str, Any]] = []
        # Organisations: the objects below are per organisation, as in Grafana. A request acts in
        # the one its X-Grafana-Org-Id header names (1, the main one, without it); the attributes
        # (folders, datasources, ...) show the main organisation's, `org_state(id)` any one's.
        self.orgs: dict[int, str] = {1: "Main Org."}
        self.org_states: dict[int, dict[str, Any]] = {1: _fresh_org()}
        self._request_org = threading.local()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://admin:admin@127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> GrafanaStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def current_org(self) -> int:
        return getattr(self._request_org, "org", 1)

    def org_state(self, org_id: int) -> dict[str, Any]:
        """One organisation's objects (folders, datasources, dashboards, ...)."""
        return self.org_states[org_id]

    def org_id(self, name: str) -> int | None:
        return next((i for i, n in self.orgs.items() if n == name), None)

    # -- routes ---------------------------------------------------------------------------------

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        routes = [
            ("GET", r"/api/orgs/name/([^/]+)", self.get_org_by_name),
            ("POST", r"/api/orgs", self.create_org),
            ("GET", r"/api/folders/([\w-]+)", self.get_folder),
            ("POST", r"/api/folders", self.create_folder),
            ("PUT", r"/api/folders/([\w-]+)", self.update_folder),
            ("GET", r"/api/datasources/uid/([\w-]+)", self.get_datasource),
            ("POST", r"/api/datasources", self.create_datasource),
            ("PUT", r"/api/datasources/uid/([\w-]+)", self.update_datasource),
            ("POST", r"/api/dashboards/db", self.save_dashboard),
            ("GET", r"/api/v1/provisioning/contact-points", self.list_contact_points),
            ("POST", r"/api/v1/provisioning/contact-points", self.create_contact_point),
            ("PUT", r"/api/v1/provisioning/contact-points/([\w-]+)", self.update_contact_point),
            ("GET", r"/api/v1/provisioning/policies", self.get_policy),
            ("PUT", r"/api/v1/provisioning/policies", self.set_policy),
            ("GET", r"/api/v1/provisioning/alert-rules/([\w-]+)", self.get_rule),
            ("POST", r"/api/v1/provisioning/alert-rules", self.create_rule),
            ("PUT", r"/api/v1/provisioning/alert-rules/([\w-]+)", self.update_rule),
            ("PUT", r"/api/v1/provisioning/folder/([\w-]+)/rule-groups/([\w-]+)", self.update_group),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                return handler(body, *match.groups())
        return 404, {"message": f"no route {method} {path}"}

    def get_org_by_name(self, _body: Any, name: str) -> tuple[int, Any]:
        org = self.org_id(urllib.parse.unquote(name))
        return (200, {"id": org, "name": self.orgs[org]}) if org else (404, {"message": "Organization not found"})

    def create_org(self, body: dict) -> tuple[int, Any]:
        need(bool(body.get("name")), "organization needs a name")
        if self.org_id(body["name"]) is not None:
            return 409, {"message": "Organization name taken"}
        org = max(self.orgs) + 1
        self.orgs[org], self.org_states[org] = body["name"], _fresh_org()
        return 200, {"orgId": org, "message": "Organization created"}

    def get_folder(self, _body: Any, uid: str) -> tuple[int, Any]:
        return (200, self.folders[uid]) if uid in self.folders else (404, {"message": "folder not found"})

    def create_folder(self, body: dict) -> tuple[int, Any]:
        need(bool(body.get("title")) and bool(body.get("uid")), "folder needs title and uid")
        need(body["uid"] not in self.folders, "a folder with the same uid already exists")
        self.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"], "id": len(self.folders) + 1}
        return 200, self.folders[body["uid"]]

    def update_folder(self, body: dict, uid: str) -> tuple[int, Any]:
        need(uid in self.folders, "folder not found")
        need(body.get("overwrite") is True or "version" in body, "folder update needs version or overwrite")
        self.folders[uid]["title"] = body.get("title", self.folders[uid]["title"])
        return 200, self.folders[uid]

    def get_datasource(self, _body: Any, uid: str) -> tuple[int, Any]:
        return (200, self.datasources[uid]) if uid in self.datasources else (404, {"message": "Data source not found"})

    def _check_datasource(self, body: dict) -> None:
        for key in ("name", "type", "uid", "access", "jsonData"):
            need(key in body, f"datasource needs {key}")
        need(body["access"] in ("proxy", "direct"), "access must be proxy or direct")
        need("$__env" not in json.dumps(body), "the HTTP API does not interpolate $__env: substitute it")

    def create_datasource(self, body: dict) -> tuple[int, Any]:
        self._check_datasource(body)
        need(body["uid"] not in self.datasources, "data source with the same uid already exists")
        self.datasources[body["uid"]] = body
        return 200, {"datasource": body, "id": len(self.datasources), "message": "Datasource added"}

    def update_datasource(self, body: dict, uid: str) -> tuple[int, Any]:
        self._check_datasource(body)
        need(uid in self.datasources, "Data source not found")
        self.datasources[uid] = body
        return 200, {"datasource": body, "message": "Datasource updated"}

    def save_dashboard(self, body: dict) -> tuple[int, Any]:
        dashboard = body.get("dashboard") or {}
        need(bool(dashboard.get("uid")) and bool(dashboard.get("title")), "dashboard needs uid and title")
        need(
            isinstance(dashboard.get("panels"), list) and dashboard.get("schemaVersion"),
            "dashboard needs panels and schemaVersion",
        )
        need(body.get("folderUid") in self.folders, "folder not found")
        need(dashboard.get("id") is None, "a new or overwritten dashboard is sent with id null")
        need(dashboard["uid"] not in self.dashboards or body.get("overwrite") is True, "version-mismatched")
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                need(target["datasource"]["uid"] in self.datasources, f"panel {panel['title']}: unknown datasource")
        self.dashboards[dashboard["uid"]] = body
        return 200, {"status": "success", "uid": dashboard["uid"], "url": f"/d/{dashboard['uid']}", "version": 1}

    def list_contact_points(self, _body: Any) -> tuple[int, Any]:
        return 200, list(self.contact_points.values())

    def _check_contact_point(self, body: dict) -> None:
        need(
            bool(body.get("name")) and body.get("type") in CONTACT_TYPES, "contact point needs a name and a known type"
        )
        need(isinstance(body.get("settings"), dict), "contact point needs settings")
        need("$__env" not in json.dumps(body), "the HTTP API does not interpolate $__env: substitute it")
        required = {"webhook": "url", "slack": "url", "pagerduty": "integrationKey", "email": "addresses"}[body["type"]]
        need(bool(body["settings"].get(required)), f"{body['type']} contact point needs settings.{required}")

    def create_contact_point(self, body: dict) -> tuple[int, Any]:
        self._check_contact_point(body)
        need(body.get("uid") not in self.contact_points, "contact point uid exists")
        self.contact_points[body["uid"]] = body
        return 202, body

    def update_contact_point(self, body: dict, uid: str) -> tuple[int, Any]:
        self._check_contact_point(body)
        need(uid in self.contact_points, "contact point not found")
        self.contact_points[uid] = body
        return 202, body

    def get_policy(self, _body: Any) -> tuple[int, Any]:
        return 200, self.policy

    def set_policy(self, body: dict) -> tuple[int, Any]:
        names = {p["name"] for p in self.contact_points.values()} | {DEFAULT_RECEIVER}

        def walk(node: dict, root: bool = False) -> None:
            if root or "receiver" in node:  # a nested route without a receiver inherits its parent's
                need(node.get("receiver") in names, f"receiver {node.get('receiver')!r} is not a contact point")
            for matcher in node.get("object_matchers", []):
                need(len(matcher) == 3 and matcher[1] in ("=", "!=", "=~", "!~"), f"bad matcher {matcher}")
            for child in node.get("routes", []):
                walk(child)

        walk(body, root=True)
        self.policy = body
        return 202, {"message": "policies updated"}

    def get_rule(self, _body: Any, uid: str) -> tuple[int, Any]:
        return (200, self.rules[uid]) if uid in self.rules else (404, {"message": "rule not found"})

    def _check_rule(self, rule: dict) -> None:
        for key in (
            "title",
            "condition",
            "data",
            "folderUID",
            "ruleGroup",
            "for",
            "noDataState",
            "execErrState",
            "orgID",
        ):
            need(key in rule, f"alert rule needs {key}")
        need(rule["folderUID"] in self.folders, "folder does not exist")
        for key, allowed in STATES.items():
            need(rule[key] in allowed, f"{key} must be one of {sorted(allowed)}")
        refs = {q["refId"] for q in rule["data"]}
        need(rule["condition"] in refs, "condition must name one of the queries")
        for query in rule["data"]:
            need(
                query["datasourceUid"] == "__expr__" or query["datasourceUid"] in self.datasources,
                f"query {query['refId']}: unknown datasource",
            )
            need(isinstance(query.get("model"), dict), f"query {query['refId']} needs a model")
            if query["datasourceUid"] != "__expr__":
                need(
                    query.get("relativeTimeRange", {}).get("from", 0) > 0, f"query {query['refId']} needs a time range"
                )
            else:
                need(
                    query["model"].get("expression") in refs, f"expression {query['refId']} refers to an unknown query"
                )
        need(not any("$" in v for v in rule.get("labels", {}).values()), "labels must be literal")

    def create_rule(self, body: dict) -> tuple[int, Any]:
        self._check_rule(body)
        need(body.get("uid") not in self.rules, "rule uid exists")
        self.rules[body["uid"]] = body
        return 201, body

    def update_rule(self, body: dict, uid: str) -> tuple[int, Any]:
        self._check_rule(body)
        need(uid in self.rules, "rule not found")
        self.rules[uid] = body
        return 200, body

    def update_group(self, body: dict, folder: str, group: str) -> tuple[int, Any]:
        need(folder in self.folders, "folder not found")
        need(isinstance(body.get("interval"), int) and body["interval"] >= 10, "interval: whole seconds, at least 10")
        for rule in body.get("rules", []):
            self._check_rule(rule)
            need((rule["folderUID"], rule["ruleGroup"]) == (folder, group), "rule belongs to another group")
            self.rules[rule["uid"]] = rule
        self.groups[(folder, group)] = body["interval"]
        return 200, body

    # -- HTTP plumbing --------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = self.path.split("?", 1)[0]
                standin.requests.append((self.command, path, body))
                org = int(self.headers.get("X-Grafana-Org-Id") or 1)
                standin._request_org.org = org
                if self.command == "PUT" and path == "/api/v1/provisioning/policies" and org in standin.orgs:
                    standin.policy_headers = dict(self.headers.items())
                if self.headers.get("Authorization") != standin.auth:
                    status, answer = 401, {"message": "Unauthorized"}
                elif org not in standin.orgs:
                    status, answer = 401, {"message": "User is not a member of the organization"}
                else:
                    try:
                        status, answer = standin.route(self.command, path, body)
                    except ContractError as exc:
                        status, answer = 400, {"message": str(exc)}
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _org_scoped(name: str) -> property:
    def get(self: GrafanaStandIn) -> Any:
        return self.org_states[self.current_org][name]

    def put(self: GrafanaStandIn, value: Any) -> None:
        self.org_states[self.current_org][name] = value

    return property(get, put)


for _name in ORG_SCOPED:
    setattr(GrafanaStandIn, _name, _org_scoped(_name))
