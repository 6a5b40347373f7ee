"""Multi-user notebooks against the real stack: a person logs in to the hub on Keycloak's own login page, starts
their server through the hub's REST API with their own hub token, and runs a notebook under nbclient inside it.

The notebook reads a dataset granted to them through the lake gateway with ``LakeGatewayClient()`` (their own
token, from the file the hub gave their server), is refused one not granted, renews its token through the hub,
cannot open the stack's state, and finds no platform secret in its environment; the read is audited in their name.
"""

from __future__ import annotations

import json
import pwd
import ssl
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import nbformat
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from keycloak_browser import browser_trusting, log_in
from websockets.sync.client import connect

from apps import dataset as dataset_cli
from apps import grant as grant_cli
from apps import project as project_cli
from apps import user as user_cli
from infra import process, stack
from infra.notebooks_host import os_user
from lake_schemas.tables import SILVER_STUDIES
from platform_layer import audit, governance
from platform_layer.realm import NOTEBOOKS_CLIENT, client_kv_path, read_client_record
from platform_layer.tls import ca_file
from platform_layer.vault import admin_client

pytestmark = pytest.mark.integration

NEW_PASSWORD = "a-long-Passphrase-2026"
KERNEL_ENVIRONMENT = {"RADLAKE_STATE_DIR", "RADLAKE_ACCESS_TOKEN_FILE", "RADLAKE_GATEWAY_PORT", "RADLAKE_KEYCLOAK_PORT"}


def _studies(settings, project: str, count: int) -> None:
    rows = [{"provider": "h1", "providers": ["h1"], "project": project, "study_uid": f"2.25.{uuid.uuid4().int}",
             "pseudo_patient_id": f"p-{i}", "status": "complete", "instance_count": 10 + i, "series_count": 1}
            for i in range(count)]
    write_deltalake(governance.lake_table_path(settings, "silver/studies"),
                    pa.Table.from_pylist(rows, schema=governance.arrow_schema(SILVER_STUDIES)), mode="append")


def _project(settings, capsys, rows: int) -> tuple[str, str]:
    """A project with ``rows`` studies and a dataset of them: (project, dataset)."""
    project = f"nb-{uuid.uuid4().hex[:8]}"
    assert project_cli.main(["create", project]) == 0
    _studies(settings, project, rows)
    assert dataset_cli.main(["create", f"{project}-all", "--project", project, "--table", "silver/studies"]) == 0
    capsys.readouterr()
    return project, f"{project}-all"


def _person(capsys, *roles: str) -> tuple[str, str]:
    name = f"nb-{uuid.uuid4().hex[:8]}"
    assert user_cli.main(["add", name, "--email", f"{name}@example.org"]) == 0
    password = capsys.readouterr().out.splitlines()[0].strip()
    for role in roles:
        assert user_cli.main(["grant", name, role]) == 0
    return name, password


def _processes_of(account: str) -> list[int]:
    uid = pwd.getpwnam(account).pw_uid
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _owner(p) == uid]


def _owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except FileNotFoundError:
        return None


def _xsrf(browser: httpx.Client) -> dict[str, str]:
    return {"X-XSRFToken": next(c.value for c in browser.cookies.jar if c.name == "_xsrf")}


def _kernel_run(hub: httpx.Client, base: str, server: str, token: str, context: ssl.SSLContext, code: str) -> dict:
    """Execute ``code`` in a new kernel of the user's server over its websocket; the execute_reply's content."""
    kernel = hub.post(f"{server}/api/kernels", json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    url = f"{base.replace('https://', 'wss://')}{server}/api/kernels/{kernel.json()['id']}/channels"
    with connect(url, additional_headers={"Authorization": f"token {token}"}, ssl=context, max_size=None) as ws:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": uuid.uuid4().hex,
                       "date": datetime.now(UTC).isoformat(), "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        while True:
            message = json.loads(ws.recv(timeout=600))
            if message.get("parent_header", {}).get("msg_id") == msg_id and message["msg_type"] == "execute_reply":
                hub.delete(f"{server}/api/kernels/{kernel.json()['id']}")
                return message["content"]


def _notebook(state_dir, granted: str, refused: str) -> nbformat.NotebookNode:
    secret_file = next(p for p in sorted((state_dir / "vault").rglob("*")) if p.is_file())
    cells = [
        "import json, os, pwd\n"
        "from platform_layer.governance import AccessRefused\n"
        "from platform_layer.lake_access import LakeGatewayClient\n"
        "lake = LakeGatewayClient()\n"
        f"print('rows', lake.read({granted!r}).num_rows)",
        f"try:\n    lake.read({refused!r})\nexcept AccessRefused as err:\n    print('refused', err)",
        # an expired token: renewed through the hub with the server's own hub token
        "path = os.environ['RADLAKE_ACCESS_TOKEN_FILE']\n"
        "record = json.load(open(path))\n"
        "old = record['access_token']\n"
        "record['expires_at'] = 0\n"
        "json.dump(record, open(path, 'w'))\n"
        f"print('renewed rows', lake.read({granted!r}).num_rows)\n"
        "print('renewed', json.load(open(path))['expires_at'] > 0)",
        f"for path in ({str(secret_file)!r}, {str(state_dir / 'tls' / 'ca.pem')!r}):\n"
        "    try:\n        open(path).read()\n        print('read', path)\n"
        "    except PermissionError:\n        print('denied')",
        "print('user', pwd.getpwuid(os.getuid()).pw_name, os.getuid())\n"
        "print('env', json.dumps(sorted(k for k in os.environ if k.startswith(('RADLAKE_', 'VAULT')))))\n"
        "print('values', json.dumps(sorted(os.environ.values())))",
    ]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])


def test_a_person_logs_in_to_the_hub_and_their_notebook_reads_only_what_they_are_granted(
        settings, notebooks, capsys, tmp_path):
    project, granted = _project(settings, capsys, 3)
    _, refused = _project(settings, capsys, 2)
    ann, password = _person(capsys, f"project:{project}:reader")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert grant_cli.main([ann, granted, "--until", tomorrow]) == 0

    # someone of the realm without a project role is not admitted
    outsider, outsider_password = _person(capsys)
    with browser_trusting(ca_file(settings)) as browser:
        page = log_in(browser, f"{notebooks}/hub/oauth_login", outsider, outsider_password, new_password=NEW_PASSWORD)
        assert page.status_code == 403

    with browser_trusting(ca_file(settings)) as browser:
        log_in(browser, f"{notebooks}/hub/oauth_login?next=/hub/home", ann, password, new_password=NEW_PASSWORD)
        browser.get(f"{notebooks}/hub/home")  # sets the _xsrf cookie
        answer = browser.post(f"{notebooks}/hub/api/users/{ann}/tokens", json={"note": "test", "expires_in": 3600},
                              headers=_xsrf(browser))
        assert answer.status_code == 201, answer.text
        token = answer.json()["token"]

    context = ssl.create_default_context(cafile=str(ca_file(settings)))
    with httpx.Client(base_url=notebooks, verify=context, timeout=120,
                      headers={"Authorization": f"token {token}"}) as hub:
        started = hub.post(f"/hub/api/users/{ann}/server")
        assert started.status_code in (201, 202), started.text
        for _ in range(180):
            model = hub.get(f"/hub/api/users/{ann}").json()
            if model["servers"].get("", {}).get("ready"):
                break
            time.sleep(1)
        server = model["servers"][""]["url"].rstrip("/")
        notebook = _notebook(settings.state_dir, granted, refused)
        assert hub.put(f"{server}/api/contents/check.ipynb",
                       json={"type": "notebook", "format": "json", "content": notebook}).status_code in (200, 201)
        reply = _kernel_run(hub, notebooks, server, token, context,
                            "import nbclient, nbformat\n"
                            "nb = nbformat.read('check.ipynb', as_version=4)\n"
                            "nbclient.NotebookClient(nb, kernel_name='python3', timeout=300).execute()\n"
                            "nbformat.write(nb, 'check.out.ipynb')")
        assert reply["status"] == "ok", reply
        done = hub.get(f"{server}/api/contents/check.out.ipynb").json()["content"]

    # stopping the component leaves no process: the hub, its proxy, the person's server and its kernels
    hub_component = stack.component("notebooks", settings)
    running = _processes_of(os_user(ann))
    assert running
    hub_component.stop()
    assert not [pid for pid in running if process.pid_alive(pid)] and not _processes_of(os_user(ann))
    assert process.read_pid(hub_component.home / "proxy.pid") is None
    subprocess.run(["userdel", "--remove", os_user(ann)], check=True, capture_output=True)  # noqa: S603,S607
    hub_component.start()

    out = ["".join(o.get("text", "") for o in cell["outputs"]) for cell in done["cells"]]
    assert out[0].strip() == "rows 3"
    assert out[1].startswith("refused") and "holds no active grant" in out[1]
    assert out[2].split() == ["renewed", "rows", "3", "renewed", "True"]
    assert out[3].split() == ["denied", "denied"]
    user_line, env_line, values_line = out[4].splitlines()
    assert user_line.split()[1].startswith("rlnb-") and user_line.split()[2] != "0"
    assert set(json.loads(env_line.split(" ", 1)[1])) == KERNEL_ENVIRONMENT
    secret = read_client_record(admin_client(settings), client_kv_path(NOTEBOOKS_CLIENT), settings.vault_kv_mount)
    assert secret is not None and secret["client_secret"] not in values_line

    reads = [r for r in audit.read(settings)
             if r.action == "dataset.read" and r.target == f"dataset {granted}" and r.outcome == "allowed"]
    assert len(reads) == 2 and {r.actor for r in reads} == {f"user:{ann}"}
    assert json.loads(reads[0].details)["rows"] == 3
    refusals = [r for r in audit.read(settings) if r.target == f"dataset {refused}" and r.outcome == "refused"]
    assert {r.actor for r in refusals} == {f"user:{ann}"}
