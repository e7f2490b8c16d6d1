"""A serving process imports neither what only the schema migration needs (alembic, mako: the
migration runs in a forked child), nor PostgreSQL's driver or dialects on SQLite, nor the Lark
parser jsonschema's ``iri`` format checker would build at import, nor the page templates,
Markdown, the builder and the review checks before a request needs them (issue #18: peak PSS
of ``strata serve``); the ``iri`` checker still works, importing it on first use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys
from pathlib import Path
from strata.config import Listen, ServerSettings
from strata.server import runner
settings = ServerSettings(data_dir=Path(sys.argv[1]), listen=Listen.parse("127.0.0.1:1"))
runner.tighten_data_dir(settings)
runner.prepare_elsewhere(settings)
runner.requeue_builds(settings)
runner.prepare_webhook_key(settings)
runner.prepare_auth(settings)
after_prepare = sorted(sys.modules)
app = runner.worker_app(settings)
loaded = sorted(sys.modules)
import jsonschema
checker = jsonschema.FormatChecker()
iri = [checker.conforms("https://example.com/ä", "iri"), checker.conforms("no iri", "iri")]
duration = [checker.conforms("P1D", "duration"), checker.conforms("P1X", "duration")]
print(json.dumps({"prepared": (Path(sys.argv[1]) / "strata.db").exists(),
                  "after_prepare": after_prepare, "loaded": loaded, "iri": iri,
                  "lark_after_iri": "lark" in sys.modules, "duration": duration,
                  "arrow_after_duration": "arrow" in sys.modules}))
"""

NOT_SERVING = ("alembic", "mako", "psycopg", "psycopg_binary", "lark", "rfc3987_syntax.utils",
               # imported by the first request that needs them (a page, a help file, a
               # build job, a review's checks): tests/pages, tests/build, tests/auth use them
               "jinja2", "markdown_it", "nh3", "strata.build.builder", "strata.build.publish",
               "strata.review.source_checks", "dockerfile_parse", "tarfile",
               # every PostgreSQL driver's dialect, on SQLite (strata.meta.conflicts)
               "sqlalchemy.dialects.postgresql",
               # jsonschema's ``duration`` checker's module (strata.lazyimports)
               "arrow", "dateutil")


def test_serving_process_skips_migration_driver_and_parser_modules(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "data")],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["prepared"]  # the child migrated the database
    for name in NOT_SERVING:
        assert name not in got["after_prepare"], name
        assert name not in got["loaded"], name
    assert "jsonschema" in got["loaded"] and "sqlalchemy" in got["loaded"]
    assert got["iri"] == [True, False]  # the deferred checker, imported on first use
    assert got["lark_after_iri"]
    assert got["duration"] == [True, False]  # the same answers, the module imported then
    assert got["arrow_after_duration"]
