"""Alert links that a label value cannot steer.

Every alert's `dashboard` annotation is a URL built from query labels (tenant, feature, model),
and those values come from the events. Grafana renders annotations with Go's text/template
(`$labels` bound to the alert's labels), so each label inside the URL goes through the built-in
`urlquery` (url.QueryEscape). The tests render the annotations with the evaluator's renderer and,
where a Go toolchain is installed, with Go's own text/template, then parse the URL back.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tokentrail.dashboards.alert_rules import RULES
from tokentrail.dashboards.alerting_provisioning import LINK_LABELS, rule_api
from tokentrail.dashboards.evaluate import render_template

HOSTILE = {
    "tenant": "x&var-tenant=other",
    "feature": "a b+c%2F/../#frag?q='\"",
    "model": "\\' OR 1=1) --\nnext",
}
LINKS = {r.uid: rule_api(r)["annotations"]["dashboard"] for r in RULES}
WITH_LABELS = {uid: link for uid, link in LINKS.items() if "$labels" in link}

GO_RENDERER = """package main

import (
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type Case struct {
	Template string            `json:"template"`
	Labels   map[string]string `json:"labels"`
}

func main() {
	var cases []Case
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		panic(err)
	}
	out := []string{}
	for _, c := range cases {
		// Grafana's annotation expansion binds $labels the same way before the template text.
		t := template.Must(template.New("annotation").Parse("{{- $labels := .Labels -}}" + c.Template))
		var b strings.Builder
		if err := t.Execute(&b, map[string]any{"Labels": c.Labels}); err != nil {
			panic(err)
		}
		out = append(out, b.String())
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
"""


def _params(link: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(link).query, keep_blank_values=True, strict_parsing=True)


def _expected(link: str) -> dict[str, list[str]]:
    return {f"var-{name}": [HOSTILE[name]] for name in LINK_LABELS if f"$labels.{name}" in link}


def test_some_rules_link_with_labels():
    """The tests below are not vacuous: several rules carry tenant/feature/model into their link."""
    assert len(WITH_LABELS) >= 5


@pytest.mark.parametrize("uid", sorted(LINKS))
def test_every_label_in_a_link_is_url_encoded(uid):
    """Each template action inside the URL is `urlquery $labels.<name>`; no label is printed raw."""
    actions = re.findall(r"\{\{(.*?)\}\}", LINKS[uid])
    assert all(re.fullmatch(r"\s*urlquery \$labels\.\w+\s*", action) for action in actions), actions


@pytest.mark.parametrize("uid", sorted(WITH_LABELS))
def test_hostile_labels_come_back_as_exactly_their_values(uid):
    """Rendered with hostile values, the link has the same parameters, each holding the literal value."""
    link = render_template(WITH_LABELS[uid], HOSTILE, {})
    assert (
        urlsplit(link).path
        == f"/d/{rule_api(next(r for r in RULES if r.uid == uid))['annotations']['__dashboardUid__']}"
    )
    assert _params(link) == _expected(link=WITH_LABELS[uid])


def _go() -> str | None:
    return shutil.which("go") or next((p for p in ("/usr/local/go/bin/go",) if os.access(p, os.X_OK)), None)


@pytest.mark.skipif(_go() is None, reason="no Go toolchain: Go's text/template rendering cannot run here")
def test_go_text_template_renders_the_links_the_same(tmp_path: Path):
    """Go's own text/template (what Grafana runs) yields the same links as the evaluator, and they parse back."""
    program = tmp_path / "render.go"
    program.write_text(GO_RENDERER)
    cases = [{"template": link, "labels": HOSTILE} for link in WITH_LABELS.values()]
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GO111MODULE": "off"}
    done = subprocess.run(
        [_go(), "run", str(program)], input=json.dumps(cases), capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr
    rendered = json.loads(done.stdout)
    for link, template in zip(rendered, WITH_LABELS.values(), strict=True):
        assert link == render_template(template, HOSTILE, {})
        assert _params(link) == _expected(template)
