"""Every `hub ...` example in the documentation runs, and says something, on the demo's data.

The examples are the lines of the ```sh blocks of every page in the site's nav (and of the
files its pages include with ``--8<--``) whose command is ``hub``, alone or after a pipe;
continuation lines are joined and comments dropped. One `hub demo --seed 7 --keep-running`
in a fresh data dir gives them the traffic the pages' references come from (the first MARAC
flag the coordinator raises with seed 7 is case MARAC-NW-2026-0085, subject SUBJ-D0EDA8),
and a hub to talk to. Each example then runs as written, in page order, from the repository
root (they name files under examples/): it must exit 0 and print something. A pipeline runs
through bash; a plain `hub ...` line runs in this process (``_run``).

The shell variables the pages name are set as the pages say: ``$EVENT_ID`` an event id from
the audit log, ``$TOKEN_ID`` the ingress token `hub ingress token add` made, ``$PW`` a
console password. The servers (``SERVERS``) run until stopped, so here they are only parsed
by the CLI (an unknown option or a missing argument fails): their own tests run them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from typer.main import get_command
from typer.testing import CliRunner

from hub.audit.sqlite import SQLiteAuditStore
from hub.cli.main import app
from hub.models import AuditDecision
from tests.conftest import hub_test_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', re.MULTILINE)

#: long-running commands: parsed, not run (their own tests run them: tests/e2e/test_demo.py,
#: tests/unit/test_console.py, tests/integration/test_ingress.py and test_webhooks.py; and
#: `hub webhooks run` would POST to the example's host)
SERVERS = (
    ("up",),
    ("demo",),
    ("broker",),
    ("console",),
    ("ingress", "serve"),
    ("webhooks", "run"),
)
#: examples for two linked hubs (the pages' federation sections: the peer swcsp-hub, the South's
#: parties, a transfer): tests/e2e/test_federation_demo.py runs them on `hub federation demo`'s
#: two hubs (the proofs); the rest of them, which need both hubs running, are only parsed here
FEDERATED = ("swcsp-hub", "south-worcs", "$TRANSFER_ID")


def federated(example: Example) -> bool:
    """Whether the example needs the two linked hubs of `hub federation demo`."""
    return any(word in example.line for word in FEDERATED)


#: what an example that asks reads from its stdin
ANSWERS = {
    ("console", "user", "add"): "a long console password\na long console password\n",
    ("audit", "prune"): "n\n",
}
PASSWORD = "a long console password"
#: the seed the pages' references come from (the demo's default)
SEED = ("--seed", "7")


@dataclass(frozen=True)
class Example:
    page: str
    line: str
    argv: tuple[str, ...]  # the `hub` command's own words, after `hub`

    def __str__(self) -> str:
        return f"{self.page}: {self.line}"


def _pages() -> list[Path]:
    """The nav's pages in order, each followed by the files it includes."""
    config: Any = YAML(typ="safe").load((ROOT / "mkdocs.yml").read_text())

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                yield from walk(value)

    pages = []
    for name in walk(config["nav"]):
        page = ROOT / "docs" / name
        pages.append(page)
        pages += [ROOT / inc for inc in SNIPPET.findall(page.read_text())]
    return pages


def _sh_lines(text: str) -> Iterator[str]:
    """Logical lines of the ```sh blocks: continuations joined."""
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        pending = ""
        for raw in block.splitlines():
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1] + " "
                continue
            yield pending + raw
            pending = ""


def examples() -> list[Example]:
    found = []
    for page in _pages():
        for line in _sh_lines(page.read_text()):
            words = shlex.split(line, comments=True)
            starts = [i + 1 for i, w in enumerate(words) if w == "|"]
            for start in (0, *starts):
                if start < len(words) and words[start] == "hub":
                    end = next((i for i in starts if i > start), len(words) + 1) - 1
                    command = line.split(" #", 1)[0].strip()
                    argv = tuple(words[start + 1 : end])
                    found.append(Example(str(page.relative_to(ROOT)), command, argv))
    return found


EXAMPLES = examples()


def _is(example: Example, prefix: tuple[str, ...]) -> bool:
    words = tuple(w for w in example.argv if not w.startswith("-"))
    return words[: len(prefix)] == prefix and (prefix != ("console",) or len(words) == 1)


@pytest.mark.parametrize(
    "example",
    [
        e
        for e in EXAMPLES
        if any(_is(e, s) for s in SERVERS) or (federated(e) and not _is(e, ("audit", "proof")))
    ],
    ids=str,
)
def test_a_server_or_federated_example_parses(example: Example) -> None:
    """Resolve the command and parse its options, as click would before running it."""
    command: Any = get_command(app)
    name, args = "hub", list(example.argv)
    while hasattr(command, "resolve_command"):
        ctx = command.make_context(name, args)
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            break
        name, command, args = command.resolve_command(ctx, rest)
    command.make_context(name, args)  # raises on an unknown option or a missing argument


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`hub demo` (seed 7) left running in a fresh data dir: the environment to run in."""
    data = tmp_path_factory.mktemp("docs-demo")
    env = {
        **os.environ,
        "HUB_DATA_DIR": str(data),
        "HUB_CONSOLE_PORT": "0",  # the pages' examples do not need the demo's console
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **hub_test_env(),  # the tests' session timeout: the demo's workers join sooner
    }
    log = (data.parent / "demo.out").open("w+")
    proc = subprocess.Popen(
        [str(BIN / "hub"), "demo", "--events", "60", "--rate", "50", *SEED, "--keep-running"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while "hub still running" not in (data.parent / "demo.out").read_text():
            assert proc.poll() is None, (data.parent / "demo.out").read_text()[-3000:]
            assert time.monotonic() < deadline, "the demo did not finish within 240 s"
            time.sleep(0.2)
        with SQLiteAuditStore(data / "audit.sqlite3") as store:
            delivered = store.query(decision=AuditDecision.DELIVERED, limit=1)
        env.update(EVENT_ID=delivered[0].event_id, PW=PASSWORD)
        yield env
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


#: commands that print nothing when they succeed; the example after each shows the effect
QUIET = (("webhooks", "remove"),)
_VAR = re.compile(r"\$\{?(\w+)\}?")


def _run(example: Example, env: dict[str, str], answer: str) -> tuple[int, str]:
    """(exit code, everything printed). A pipeline runs through bash; a plain `hub ...` runs
    in this process (CliRunner: the same app and arguments, without the 2 to 5 s start-up of
    a new interpreter each time), with the shell's variables expanded as bash would."""
    if "|" in shlex.split(example.line, comments=True):
        proc = subprocess.run(
            ["bash", "-c", example.line],
            env=env,
            cwd=ROOT,
            input=answer,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        return proc.returncode, proc.stdout + proc.stderr
    line = _VAR.sub(lambda m: env.get(m.group(1), ""), example.line)
    result = CliRunner().invoke(app, shlex.split(line, comments=True)[1:], env=env, input=answer)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_every_example_runs_and_says_something(
    demo: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the examples name files under examples/
    failures = []
    ran = 0
    for example in EXAMPLES:
        if any(_is(example, s) for s in SERVERS) or federated(example):
            continue
        answer = next((a for p, a in ANSWERS.items() if _is(example, p)), "")
        code, output = _run(example, demo, answer)
        ran += 1
        quiet = any(_is(example, q) for q in QUIET)
        if code != 0 or not (output.strip() or quiet):
            failures.append(f"{example}\n  exit {code}: {output[-600:]}")
        if _is(example, ("ingress", "token", "add")):
            listed = CliRunner().invoke(app, ["ingress", "token", "list", "--json"], env=demo)
            demo["TOKEN_ID"] = json.loads(listed.stdout.splitlines()[-1])["token_id"]
    assert not failures, "\n".join(failures)
    assert ran >= 30, ran
