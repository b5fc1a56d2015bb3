"""Identities and keys at rest: created on a node's first use, encrypted under a passphrase kept
outside the data directory, unlocked once per process, refused without the right passphrase.

Real SQLite, real scrypt keyfiles (eth_keyfile), real BIP-340 and EVM keys throughout; the suite
runs with COLONY_INSECURE_TEST_KDF (n=2**10) except where the production parameters are the point.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import apsw
import pytest
from eth_account import Account
from eth_keyfile.keyfile import decode_keyfile_json

from colony.config import Settings
from colony.errors import IdentityError, KeysLockedError
from colony.identity import (
    Keyring,
    agent_identity,
    create_agent,
    keystore,
    list_identities,
    node_identity,
    schnorr_verify,
    verify_event,
)
from colony.identity.evm import verify_binding
from colony.identity.passphrase import Passphrase, default_passphrase_file
from colony.node import Node
from colony.store import open_database

COLONY = [sys.executable, "-m", "colony"]


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COLONY, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", **env})


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def node(settings: Settings) -> Any:
    n = Node(settings)
    yield n
    n.db.close()


def secrets_of(n: Node) -> list[bytes]:
    """Every secret the node holds: each identity's Schnorr secret and EVM secret."""
    found = []
    for ident in list_identities(n):
        found += [ident.schnorr_key.secret, bytes(ident.evm_account.key)]
    return found


# -- creation -------------------------------------------------------------------------------------


def test_first_use_creates_the_node_and_the_default_agent_each_with_two_independent_keys(node: Node) -> None:
    setup = node.keyring.ensure()
    assert setup.created == ["node", "colony"]
    me, agent = node_identity(node), agent_identity(node)
    assert (me.role, agent.role, agent.name) == ("node", "agent", "colony")
    assert [i.name for i in list_identities(node)] == ["node", "colony"]
    for ident in (me, agent):
        key, account = ident.schnorr_key, ident.evm_account
        assert key.public_hex == ident.public_hex and ident.npub.startswith("npub1")
        assert account.address == ident.evm_address
        # Two signing domains, two secrets: the EVM account is not the Schnorr secret's account.
        assert bytes(account.key) != key.secret
        assert Account.from_key(key.secret).address != ident.evm_address
        assert verify_binding(ident.evm_address, ident.public_hex, ident.evm_proof)
        event = ident.sign(1, "hello")
        assert verify_event(event) and event.pubkey == ident.public_hex
    assert me.public_hex != agent.public_hex and me.evm_address != agent.evm_address
    assert node.keyring.ensure().created == ["node", "colony"]  # cached: not created twice
    again = Keyring(node.db, node.settings).ensure()
    assert again.created == [] and again.generated_passphrase is None
    assert [i.public_hex for i in list_identities(node.db, node.settings)] == [me.public_hex, agent.public_hex]


def test_more_agents_get_their_own_keys_and_bad_names_are_refused(node: Node) -> None:
    scout = create_agent(node, "scout", skills=["search", "search", " summarise "], description="finds things")
    assert scout.skills == ("search", "summarise") and scout.description == "finds things"
    assert agent_identity(node, name="scout").public_hex == scout.public_hex
    assert len({i.public_hex for i in list_identities(node)}) == 3
    for bad in ("Scout", "-x", "a" * 33, "x y", ""):
        with pytest.raises(IdentityError) as info:
            create_agent(node, bad)
        assert info.value.reason == "invalid"
    with pytest.raises(IdentityError) as taken:
        create_agent(node, "scout")
    assert taken.value.reason == "exists"
    with pytest.raises(IdentityError) as node_name:
        create_agent(node, "node")
    assert node_name.value.reason == "exists"
    with pytest.raises(IdentityError):
        create_agent(node, "many", skills=[f"s{i}" for i in range(33)])
    with pytest.raises(IdentityError) as unknown:
        agent_identity(node, name="nobody")
    assert unknown.value.reason == "unknown"
    with pytest.raises(IdentityError):
        agent_identity(node, name="node")  # the node's identity is not an agent
    assert [i.name for i in list_identities(node)] == ["node", "colony", "scout"]


def test_the_database_refuses_plaintext_keys_a_second_node_and_changed_public_keys(node: Node) -> None:
    me = node_identity(node)
    row = node.db.one("SELECT * FROM identities WHERE name = 'colony'")
    assert row is not None
    plaintext = json.dumps({"version": 3, "secret": "11" * 32})
    attempts = [
        ("INSERT INTO identities(name, role, public_hex, evm_address, schnorr_keyfile, evm_keyfile, evm_proof) "
         "VALUES ('x', 'agent', ?, ?, ?, ?, ?)", ("ab" * 32, "0x" + "12" * 20, plaintext, row["evm_keyfile"],
                                                 row["evm_proof"])),
        ("INSERT INTO identities(name, role, public_hex, evm_address, schnorr_keyfile, evm_keyfile, evm_proof) "
         "VALUES ('second', 'node', ?, ?, ?, ?, ?)", ("cd" * 32, "0x" + "34" * 20, row["schnorr_keyfile"],
                                                     row["evm_keyfile"], row["evm_proof"])),
        ("UPDATE identities SET public_hex = ? WHERE name = 'node'", ("ef" * 32,)),
        ("UPDATE identities SET evm_address = ? WHERE name = 'node'", ("0x" + "56" * 20,)),
    ]
    for sql, params in attempts:
        with pytest.raises(apsw.ConstraintError):
            node.db.connection().execute(sql, params)
    assert node_identity(node).public_hex == me.public_hex
    assert node.db.scalar("SELECT count(*) FROM identities") == 2


# -- the passphrase ------------------------------------------------------------------------------


def test_generated_passphrase_lives_outside_the_data_dir_owner_only_and_is_announced_once(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="colony.identity")
    n = Node(settings)
    try:
        setup = n.keyring.ensure()
    finally:
        n.db.close()
    path = default_passphrase_file(settings.home)
    assert setup.generated_passphrase == path and setup.passphrase_source == str(path)
    assert path.is_file() and not path.is_relative_to(settings.home.resolve())
    assert path.is_relative_to(Path(os.environ["XDG_CONFIG_HOME"]))
    assert mode(path) == 0o600 and mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700
    assert len(path.read_text().strip()) >= 40  # 256 random bits, URL-safe base64
    announced = [r for r in caplog.records if "Generated a passphrase" in r.getMessage()]
    assert len(announced) == 1 and str(path) in announced[0].getMessage()
    assert path.read_text().strip() not in caplog.text  # the path is told, never the passphrase

    caplog.clear()
    again = Node(settings)
    try:
        assert again.keyring.ensure().generated_passphrase is None
    finally:
        again.db.close()
    assert "Generated a passphrase" not in caplog.text


def test_the_cli_announces_a_generated_passphrase_once_on_stderr() -> None:
    first = cli("identity", "show", "--json")
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("Generated a passphrase") == 1
    assert first.stderr.count("test-strength scrypt") == 1  # the test setting is never silent
    assert json.loads(first.stdout)["agents"][0]["name"] == "colony"  # stdout stays clean JSON
    second = cli("identity", "show")
    assert second.returncode == 0 and "Generated a passphrase" not in second.stderr
    assert "npub1" in second.stdout and "passphrase from" in second.stdout


def test_passphrase_from_the_environment_or_a_named_file(settings: Settings, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "pp"
    secret_file.write_text("correct horse battery staple\n")
    monkeypatch.setenv("COLONY_KEY_PASSPHRASE_FILE", str(secret_file))
    n = Node(Settings())
    try:
        setup = n.keyring.ensure()
        assert setup.passphrase_source == str(secret_file) and setup.generated_passphrase is None
        created = node_identity(n).public_hex
    finally:
        n.db.close()
    assert not default_passphrase_file(settings.home).exists()  # nothing generated when one is configured
    # The same passphrase through the environment opens the same keys (the newline is not part of it).
    monkeypatch.delenv("COLONY_KEY_PASSPHRASE_FILE")
    monkeypatch.setenv("COLONY_KEY_PASSPHRASE", "correct horse battery staple")
    keystore.forget()
    n = Node(Settings())
    try:
        assert node_identity(n).schnorr_key.public_hex == created
    finally:
        n.db.close()


@pytest.mark.parametrize("problem", ["missing file", "empty file", "empty variable"])
def test_a_configured_passphrase_that_does_not_work_is_an_error_even_on_a_first_start(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, problem: str
) -> None:
    if problem == "empty variable":
        monkeypatch.setenv("COLONY_KEY_PASSPHRASE", "")
    else:
        path = tmp_path / "pp"
        if problem == "empty file":
            path.write_text("\n")
        monkeypatch.setenv("COLONY_KEY_PASSPHRASE_FILE", str(path))
    n = Node(Settings())
    try:
        with pytest.raises(KeysLockedError) as info:
            n.keyring.ensure()
    finally:
        n.db.close()
    assert "COLONY_KEY_PASSPHRASE" in str(info.value)
    assert not default_passphrase_file(settings.home).exists()
    check = open_database(settings.db_path)
    try:
        assert check.scalar("SELECT count(*) FROM identities") == 0  # nothing created with a guessed passphrase
    finally:
        check.close()


def _made_with(passphrase: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("COLONY_KEY_PASSPHRASE", passphrase)
    n = Node(Settings())
    try:
        return {i.name: (i.public_hex, i.evm_address) for i in list_identities(n)}
    finally:
        n.db.close()


def test_a_second_process_with_the_passphrase_gets_the_same_identities_and_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = _made_with("s3cret passphrase", monkeypatch)
    shown = cli("identity", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    seen = {i["name"]: (i["public_hex"], i["evm_address"]) for i in [data["node"], *data["agents"]]}
    assert seen == made and data["passphrase_source"] == "COLONY_KEY_PASSPHRASE"
    # The other process really unlocked the key: it signs as the agent.
    signed = cli("identity", "card", "colony", "--event")
    assert signed.returncode == 0, signed.stderr
    event = json.loads(signed.stdout)
    assert verify_event(event) and event["pubkey"] == made["colony"][0]


@pytest.mark.parametrize("how", ["wrong", "missing"])
def test_without_the_right_passphrase_a_node_stops_with_a_clear_error_and_exit_3(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    n = Node(settings)
    try:
        before = {i.name: i.public_hex for i in list_identities(n)}  # generated passphrase file
    finally:
        n.db.close()
    generated = default_passphrase_file(settings.home)
    env = {}
    if how == "wrong":
        env["COLONY_KEY_PASSPHRASE"] = "not the passphrase"
    else:
        generated.rename(generated.with_suffix(".moved"))
    for args in (["identity", "show"], ["identity", "card"], ["up", "--port", "0"]):
        r = cli(*args, **env)
        assert r.returncode == 3, (args, r.stdout, r.stderr)
        assert "COLONY_KEY_PASSPHRASE" in r.stderr and "Traceback" not in r.stderr
        if how == "missing":
            assert str(generated) in r.stderr and "COLONY_KEY_PASSPHRASE_FILE" in r.stderr
        else:
            assert "does not decrypt" in r.stderr
    # Nothing was replaced: same identities, and no new passphrase was generated over the old one.
    assert not generated.exists() if how == "missing" else generated.exists()
    if how == "wrong":
        monkeypatch.setenv("COLONY_KEY_PASSPHRASE", "not the passphrase")
    keystore.forget()
    n = Node(Settings())
    try:
        with pytest.raises(KeysLockedError):
            n.keyring.node()
        assert {r["name"]: r["public_hex"] for r in n.db.query("SELECT name, public_hex FROM identities")} == before
    finally:
        n.db.close()


def test_two_processes_starting_a_new_node_at_once_agree_on_one_passphrase_and_one_set_of_identities(
    settings: Settings,
) -> None:
    procs = [subprocess.Popen([*COLONY, "identity", "show", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(os.environ)) for _ in range(3)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outputs]
    shown = [json.loads(o) for o, _ in outputs]
    assert all(s == shown[0] for s in shown)
    keys_dir = default_passphrase_file(settings.home).parent
    assert [p.name for p in keys_dir.iterdir()] == [default_passphrase_file(settings.home).name]
    assert sum(e.count("Generated a passphrase") for _, e in outputs) == 1


# -- at rest -------------------------------------------------------------------------------------------


def _encodings(secret: bytes) -> list[bytes]:
    return [secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret),
            base64.urlsafe_b64encode(secret).rstrip(b"=")]


def test_a_copy_of_the_data_directory_holds_no_key_and_decoding_needs_the_passphrase(
    settings: Settings, tmp_path: Path
) -> None:
    n = Node(settings)
    try:
        create_agent(n, "scout", skills=["search"])
        secrets = secrets_of(n)
        passphrase = default_passphrase_file(settings.home).read_text().strip().encode()
        # Copied while the node runs (as a sync tool or a careless backup would): WAL included.
        copy = tmp_path / "copy"
        shutil.copytree(settings.home, copy)
    finally:
        n.db.close()
    assert len(secrets) == 6 and len(set(secrets)) == 6
    files = [p for p in copy.rglob("*") if p.is_file()]
    assert any(p.name == "colony.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            for form in _encodings(secret):
                assert form not in data, f"{path.name} holds a secret key"
        assert passphrase not in data, f"{path.name} holds the passphrase"
    # Every column of every table, read through SQLite (the WAL applied).
    conn = apsw.Connection(str(copy / "colony.db"))
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        for row in conn.execute(f'SELECT * FROM "{table}"'):
            for value in row:
                text = value if isinstance(value, bytes) else str(value).encode()
                for secret in secrets:
                    assert not any(form in text for form in _encodings(secret)), f"a column of {table} holds a key"
    keyfiles = [r[0] for r in conn.execute("SELECT schnorr_keyfile FROM identities UNION ALL "
                                           "SELECT evm_keyfile FROM identities")]
    conn.close()
    # The keyfiles in the copy are real: with the passphrase they open, without it they do not.
    opened = [bytes(decode_keyfile_json(json.loads(k), passphrase)) for k in keyfiles]
    assert sorted(opened) == sorted(secrets)
    for wrong in (b"", b"guess", passphrase[:-1]):
        with pytest.raises(ValueError, match="MAC mismatch"):
            decode_keyfile_json(json.loads(keyfiles[0]), wrong)
    # A node started on the copy (another COLONY_HOME: no passphrase file of its own) is locked.
    keystore.forget()
    elsewhere = Node(settings.model_copy(update={"home": copy}))
    try:
        with pytest.raises(KeysLockedError) as info:
            elsewhere.keyring.node()
    finally:
        elsewhere.db.close()
    assert str(default_passphrase_file(copy)) in str(info.value)
    assert not default_passphrase_file(copy).exists()  # locked, not re-keyed with a new passphrase


def test_keys_are_decrypted_once_per_process_and_a_wrong_passphrase_misses_the_cache(node: Node) -> None:
    agent = agent_identity(node)
    keystore.forget()
    before = keystore.decryptions()
    keys = [Keyring(node.db, node.settings).agent().schnorr_key for _ in range(3)]
    assert keystore.decryptions() == before + 1 + 1  # the node's key (the passphrase check) and the agent's, once
    assert {k.public_hex for k in keys} == {agent.public_hex}
    row = node.db.one("SELECT schnorr_keyfile FROM identities WHERE name = 'colony'")
    assert row is not None
    with pytest.raises(KeysLockedError):
        keystore.unseal(row["schnorr_keyfile"], Passphrase(b"wrong", "a test"))


def test_production_keyfiles_use_the_standard_scrypt_cost_and_the_test_setting_is_explicit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COLONY_INSECURE_TEST_KDF")
    assert Settings().insecure_test_kdf is False  # off unless set explicitly
    passphrase = Passphrase(b"a passphrase", "a test")
    secret = os.urandom(32)
    standard = json.loads(keystore.seal(secret, passphrase))
    assert standard["crypto"]["kdf"] == "scrypt" and standard["crypto"]["cipher"] == "aes-128-ctr"
    assert standard["crypto"]["kdfparams"]["n"] == keystore.STANDARD_SCRYPT_N == 2**18
    assert standard["crypto"]["kdfparams"]["r"] == 8 and standard["version"] == 3
    weak = json.loads(keystore.seal(secret, passphrase, weak_kdf=True, keep_address=False))
    assert weak["crypto"]["kdfparams"]["n"] == keystore.TEST_SCRYPT_N and "address" not in weak
    keystore.forget()
    assert keystore.unseal(json.dumps(standard), passphrase) == secret  # parameters come from the keyfile


def test_a_schnorr_signature_from_the_unlocked_key_verifies_against_the_stored_public_key(node: Node) -> None:
    agent = agent_identity(node)
    digest = bytes(range(32))
    assert schnorr_verify(agent.public_hex, digest, agent.schnorr_key.sign(digest))
    assert "secret" not in repr(agent) and agent.schnorr_key.secret.hex() not in repr(agent.schnorr_key)
