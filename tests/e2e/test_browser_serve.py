"""``afina serve`` itself: the first start prints the admin's one-time password, once."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import running_server

pytestmark = pytest.mark.e2e
ONE_TIME = re.compile(r"one-time password: (\S+)")


def test_first_start_prints_a_one_time_admin_password_and_the_address(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'afina.db'}"
    with running_server(tmp_path, url, admin_password=None, seed=False) as server:
        log = server.log.read_text()
        assert f"{server.url.split(':')[-1]}/chat" in log  # the address is printed
        password = ONE_TIME.search(log).group(1)
        ok = requests.post(
            f"{server.chat}/login", data={"username": "admin", "password": password}, timeout=10
        )
        assert ok.status_code == 200 and "access_token" in ok.cookies
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as health:
            assert health.status == 200
        with pytest.raises(urllib.error.HTTPError):  # Chainlit answers only under /chat
            urllib.request.urlopen(f"{server.url}/project/settings", timeout=5)
    with running_server(tmp_path, url, admin_password=None, seed=False) as server:
        assert len(ONE_TIME.findall(server.log.read_text())) == 1  # not again on restart
