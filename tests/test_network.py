"""No network unless asked: train, score and prune run with every outbound connection refused;
`hib data download` is the one command that tries, and says so first.

(The quick demo would prove the same for corpus synthesis but takes minutes, so the tiny
config stands in for it here.)
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from hib.cli import main
from tests.test_train import setup as setup  # noqa: F401  (module fixture)


def _loopback(host: object) -> bool:
    if host in ("localhost", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def attempts(monkeypatch) -> list:
    """Outbound connections and DNS lookups are refused (loopback and Unix sockets are not)."""
    tried: list = []
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        if self.family != socket.AF_UNIX and not _loopback(address[0]):
            tried.append(address)
            raise OSError(101, "Network is unreachable (blocked by the test)")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _loopback(host):
            tried.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "name lookup blocked by the test")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, a: connect(self, a) or 0)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return tried


@pytest.mark.slow
def test_train_score_prune_never_touch_the_network(attempts, setup, tmp_path):  # noqa: F811
    root, upstream = setup
    run = str(tmp_path / "run")
    overrides = [f"data.root={root}", f"upstream.name={upstream}", "train.epochs=1"]
    assert main(["train", "--out", run, *overrides, "train.batch_size=8"]) == 0
    assert main(["score", run, "--method", "taylor", "--clips", "8"]) == 0
    assert main(["prune", run, "--method", "taylor", "--ratios", "0,0.5"]) == 0
    assert attempts == []


def test_only_download_tries_and_says_so(attempts, tmp_path, capsys):
    code = main(["data", "download", "speech-commands", "--dest", str(tmp_path / "sc")])
    out, err = capsys.readouterr()
    assert code == 2 and attempts
    assert "the one hib command that uses the network" in out
    assert err.startswith("error: cannot reach ") and err.count("\n") == 1
