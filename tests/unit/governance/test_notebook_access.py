"""Who the notebooks hub admits, the OS account a person's kernels run as, the kernel's token file, and the
component's refusal to run as anyone but root (no stack needed)."""

from __future__ import annotations

import importlib
import re
import time

import jwt
import pytest

from infra.components.notebooks import CONFIG, Notebooks
from infra.errors import StackError
from infra.notebooks_host import admitted, os_user
from platform_layer.access_token_file import AccessTokenFile, AccessTokenRecord, load, save
from platform_layer.settings import Settings
from platform_layer.user_session import NotLoggedIn


@pytest.mark.parametrize(("roles", "expected"), [
    (["platform-admin"], True),
    (["offline_access", "project:lung-a:reader"], True),
    (["project:lung-a:steward"], True),
    (["provider:h1", "offline_access", "uma_authorization"], False),
    ([], False),
    (["project:lung-a:owner", "project:x"], False),
])
def test_the_hub_admits_platform_admins_and_project_members_only(roles, expected):
    assert admitted(roles) is expected


def test_os_accounts_are_safe_distinct_and_short():
    assert os_user("ann") == "rlnb-ann"
    odd, other = os_user("Ann.Smith@example.org"), os_user("ann-smith-example-org")
    assert odd != other and odd.startswith("rlnb-") and len(odd) <= 32
    assert set(odd) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert len(os_user("x" * 80)) <= 32


def _token(exp: float) -> str:
    return jwt.encode({"sub": "ann", "exp": int(exp)}, "not-a-real-key-but-long-enough-for-hs256", algorithm="HS256")


def test_the_token_file_gives_its_token_while_valid_and_says_so_when_it_cannot_renew(tmp_path):
    path = tmp_path / "access-token.json"
    valid = _token(time.time() + 300)
    save(path, AccessTokenRecord.for_token(valid))
    assert (path.stat().st_mode & 0o777) == 0o600
    assert AccessTokenFile(path, tmp_path / "ca.pem")() == valid
    save(path, AccessTokenRecord.for_token(_token(time.time() + 10)))  # inside the renewal margin, nowhere to renew
    with pytest.raises(NotLoggedIn, match="expired"):
        AccessTokenFile(path, tmp_path / "ca.pem")()
    path.write_text("not json")
    with pytest.raises(NotLoggedIn, match="not an access token file"):
        load(path)
    with pytest.raises(NotLoggedIn, match="no access token"):
        load(tmp_path / "missing.json")


def test_the_component_refuses_to_start_unless_root(tmp_path, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(StackError, match="must run as root"):
        Notebooks(Settings(state_dir=tmp_path)).prepare()


def test_the_generated_hub_config_names_a_configure_that_exists():
    module, name = re.search(r"^from (\S+) import (\w+)$", CONFIG, re.M).groups()
    assert callable(getattr(importlib.import_module(module), name))
