"""setup's decisions: what to reinstall, whether recorded tools are usable, pip's command line."""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

from thinkbank_dev import provision
from thinkbank_dev.paths import REQUIREMENTS, venv_python


class StaleRequirementsTest(unittest.TestCase):
    def test_only_lock_files_whose_hash_changed_or_was_never_recorded(self):
        wanted = {"base": "h1", "test": "h2"}
        self.assertEqual(provision.stale_requirements({"base": "h1", "test": "h2"}, wanted), [])
        self.assertEqual(provision.stale_requirements({"base": "old", "test": "h2"}, wanted), ["base"])
        self.assertEqual(provision.stale_requirements({"base": "h1"}, wanted), ["test"])
        self.assertEqual(provision.stale_requirements({}, wanted), ["base", "test"])

    def test_wanted_hashes_cover_the_test_lock_only_with_test(self):
        self.assertEqual(set(provision.wanted_hashes(False)), {"base"})
        self.assertEqual(set(provision.wanted_hashes(True)), {"base", "test"})


class PipCommandTest(unittest.TestCase):
    def test_installs_the_pinned_lock_without_resolving_dependencies(self):
        cmd = provision.pip_command(Path("/v/bin/python"), REQUIREMENTS["base"])
        self.assertEqual(cmd[:4], ["/v/bin/python", "-m", "pip", "install"])
        self.assertIn("--no-deps", cmd)
        self.assertIn("--no-input", cmd)
        self.assertEqual(cmd[-2:], ["-r", str(REQUIREMENTS["base"])])


class CheckToolsTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        root = Path(tmp.name)
        self.model, self.pg_bin, self.grpcurl = root / "model", root / "pg", root / "grpcurl"
        self.model.mkdir()
        self.pg_bin.mkdir()
        for name in ("config.json", "tokenizer.json", "model.safetensors"):
            (self.model / name).write_text("{}")
        for name in ("postgres", "pg_ctl", "psql"):
            (self.pg_bin / name).write_text("")
        self.grpcurl.write_text("#!/bin/sh\n")
        self.grpcurl.chmod(0o755)
        self.paths = {"model_dir": str(self.model), "pg_bin": str(self.pg_bin), "grpcurl": str(self.grpcurl)}

    def test_complete_tools_are_fine(self):
        self.assertIsNone(provision.check_tools(self.paths, with_test=True))

    def test_a_missing_model_file_is_named(self):
        (self.model / "tokenizer.json").unlink()
        self.assertEqual(provision.check_tools(self.paths, False), f"model file {self.model / 'tokenizer.json'} is missing")

    def test_a_missing_postgres_binary_is_named(self):
        (self.pg_bin / "pg_ctl").unlink()
        self.assertEqual(provision.check_tools(self.paths, False),
                         f"PostgreSQL binary pg_ctl is missing from {self.pg_bin}")

    def test_an_empty_stamp_is_unusable(self):
        self.assertIn("model file", provision.check_tools({}, False))

    def test_grpcurl_matters_only_with_test(self):
        self.grpcurl.chmod(0o644)  # no x bit at all: not executable even for root
        self.assertIsNone(provision.check_tools(self.paths, with_test=False))
        self.assertIn("not executable", provision.check_tools(self.paths, with_test=True))
        self.assertIn("not found", provision.check_tools({**self.paths, "grpcurl": None}, with_test=True))

    def test_tools_from_recorded_paths(self):
        tools = provision.tools_from(self.paths)
        self.assertEqual((tools.python, tools.model_dir, tools.pg_bin, tools.grpcurl),
                         (venv_python(), self.model, self.pg_bin, self.grpcurl))
        self.assertIsNone(provision.tools_from({**self.paths, "grpcurl": None}).grpcurl)


if __name__ == "__main__":
    unittest.main()
