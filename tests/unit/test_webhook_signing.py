"""Standard Webhooks signing: the spec's reference vector, verification, the secrets file."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.webhooks import WebhookConfig, sign, verify
from hub.webhooks.signing import headers_for, new_secret

# the reference vector of the Standard Webhooks libraries (standard-webhooks/standard-webhooks)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'


def test_reference_vector() -> None:
    assert (
        sign(SECRET, msg_id=MSG_ID, timestamp=TIMESTAMP, body=BODY)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_verify_accepts_ours_and_refuses_tampering_and_staleness() -> None:
    secret = new_secret()
    headers = headers_for(secret, msg_id="evt-1", body=b"{}", now=1_000_000)
    assert verify(secret, headers=headers, body=b"{}", now=1_000_010)
    assert not verify(secret, headers=headers, body=b"{ }", now=1_000_010)
    assert not verify(new_secret(), headers=headers, body=b"{}", now=1_000_010)
    assert not verify(secret, headers=headers, body=b"{}", now=1_000_000 + 301)
    assert not verify(secret, headers={**headers, "webhook-id": "evt-2"}, body=b"{}", now=1e6)
    # several signatures (key rotation): any one matching is enough
    rotated = {**headers, "webhook-signature": "v1,AAAA " + headers["webhook-signature"]}
    assert verify(secret, headers=rotated, body=b"{}", now=1_000_000)


def test_secrets_file_is_private_and_never_listed(tmp_path: Path) -> None:
    config = WebhookConfig(tmp_path / "webhooks.json")
    assert config.endpoints() == {}
    secret = config.add("west-mercia-police", "https://police.example/hook")
    assert secret.startswith("whsec_")
    assert (config.path.stat().st_mode & 0o777) == 0o600
    endpoint = config.endpoints()["west-mercia-police"]
    assert endpoint.secret.get_secret_value() == secret
    assert secret not in repr(endpoint)
    assert config.remove("west-mercia-police")
    assert not config.remove("west-mercia-police")
    config.path.write_text("[]")
    with pytest.raises(ConfigError):
        config.endpoints()


def test_cli_add_prints_the_secret_once(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    hub = Path(sys.executable).parent / "hub"
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path)}
    added = subprocess.run(
        [str(hub), "webhooks", "add", "--party", "west-mercia-police", "--url", "https://x.test/h"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    secret = added.stdout.strip()
    assert secret.startswith("whsec_")
    listed = subprocess.run(
        [str(hub), "webhooks", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert secret not in listed.stdout
    assert "https://x.test/h" in listed.stdout
    bad = subprocess.run(
        [str(hub), "webhooks", "add", "--party", "nobody", "--url", "https://x.test/h"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode != 0
    assert "Traceback" not in bad.stderr
