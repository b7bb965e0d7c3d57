"""`env`'s output: what each purpose exports, quoted so `eval` reads it back unchanged."""

from __future__ import annotations

import shlex
import unittest

from thinkbank_dev import env
from thinkbank_dev.paths import OBJECT_DIR

from .support import fake_tools


class ExportLinesTest(unittest.TestCase):
    def test_values_survive_a_round_trip_through_the_shell(self):
        values = {"A": "plain", "B": "postgresql://p@localhost/db?host=/x y", "C": "it's $HOME `x`", "D": ""}
        lines = env.export_lines(values)
        self.assertEqual(lines[0], "export A=plain")
        for line, (key, value) in zip(lines, values.items()):
            self.assertEqual(shlex.split(line), ["export", f"{key}={value}"])


class PurposeEnvTest(unittest.TestCase):
    def test_the_test_purpose_exports_the_tests_contract(self):
        exported = env.purpose_env("test", fake_tools(), "postgresql://t")
        self.assertEqual(exported["THINKBANK_TEST_DATABASE_URL"], "postgresql://t")
        self.assertNotIn("THINKBANK_DATABASE_URL", exported)

    def test_the_run_purpose_exports_what_the_services_read(self):
        self.assertEqual(env.purpose_env("run", fake_tools(), "postgresql://r"), {
            "THINKBANK_DATABASE_URL": "postgresql://r",
            "THINKBANK_EMBED_MODEL_DIR": "/models/minilm",
            "THINKBANK_OBJECT_STORE_DIR": str(OBJECT_DIR),
        })


if __name__ == "__main__":
    unittest.main()
