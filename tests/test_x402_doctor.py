"""`colony doctor` checks the x402 EVM rail against the chain: a partial configuration, a token
whose EIP-712 domain differs from the settings (every signature would be invalid), an RPC that
does not answer, and a rail that matches."""

from __future__ import annotations

import subprocess
import sys

import pytest

from colony.cli.doctor import run_checks
from colony.config import Settings
from colony.payments.evm.local import Anvil


def _rail_check(settings: Settings) -> tuple[str, str]:
    [check] = [c for c in run_checks(settings) if c.name == "x402 EVM rail"]
    return check.status, check.detail


def test_doctor_checks_the_evm_rail_against_the_chain() -> None:
    assert not [c for c in run_checks(Settings()) if c.name == "x402 EVM rail"]  # no rail, no check
    status, detail = _rail_check(Settings(x402_evm_rpc_url="http://127.0.0.1:9", x402_evm_chain_id=31337))
    assert status == "fail" and "COLONY_X402_EVM_TOKEN_NAME" in detail
    with Anvil({}) as chain:
        rail = chain.rail
        good = Settings(x402_evm_rpc_url=rail.rpc_url, x402_evm_chain_id=rail.chain_id, x402_evm_token=rail.token,
                        x402_evm_token_name=rail.token_name, x402_evm_token_version=rail.token_version)
        assert _rail_check(good) == ("ok", f"{rail.network} · token {rail.token} ({rail.token_name} "
                                           f"v{rail.token_version})")
        status, detail = _rail_check(good.model_copy(update={"x402_evm_token_version": "1", "x402_evm_chain_id": 1}))
        assert status == "fail" and "version is '2', not '1'" in detail and "chain id is 31337, not 1" in detail
        url = rail.rpc_url
    status, detail = _rail_check(good)  # anvil stopped: the RPC does not answer
    assert status == "warn" and url in detail


def test_colony_up_refuses_a_half_configured_evm_rail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_X402_EVM_CHAIN_ID", "84532")
    done = subprocess.run([sys.executable, "-m", "colony", "up", "--port", "0"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 3
    assert "missing: COLONY_X402_EVM_RPC_URL, COLONY_X402_EVM_TOKEN" in done.stderr
