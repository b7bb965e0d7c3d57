"""Where the launcher keeps its state, and how it shows paths."""

from __future__ import annotations

import hashlib
import tempfile
import unittest
from pathlib import Path

from thinkbank_dev import paths


class PathsTest(unittest.TestCase):
    def test_repo_is_the_workspace_root_and_script_the_documented_entry_point(self):
        self.assertTrue((paths.REPO / "Cargo.toml").is_file())
        self.assertEqual(paths.rel(paths.SCRIPT), "deploy/local/thinkbank_dev.py")
        self.assertTrue(paths.SCRIPT.is_file())

    def test_state_lives_under_dot_data(self):
        for path in (paths.VENV, paths.RUN_DIR, paths.LOG_DIR, paths.OBJECT_DIR, paths.SECRETS_FILE,
                     paths.ADMIN_KEY_FILE, paths.SETUP_LOCK, paths.pg_dir("run"), paths.pid_file("worker"),
                     paths.log_file("gateway")):
            with self.subTest(path=path):
                self.assertEqual(path.relative_to(paths.REPO).parts[0], ".data")

    def test_each_purpose_has_its_own_cluster_directory(self):
        self.assertEqual(paths.rel(paths.pg_dir("run")), ".data/pg-run")
        self.assertEqual(paths.rel(paths.pg_dir("test")), ".data/pg-test")
        self.assertEqual(set(paths.PURPOSES), {"run", "test"})

    def test_pid_and_log_files_are_named_after_the_service(self):
        self.assertEqual(paths.rel(paths.pid_file("launcher")), ".data/run/launcher.pid")
        self.assertEqual(paths.rel(paths.log_file("worker")), ".data/logs/worker.log")
        self.assertEqual(paths.rel(paths.venv_python()), ".data/venv/bin/python")

    def test_rel_shortens_repo_paths_and_keeps_others(self):
        self.assertEqual(paths.rel(paths.REPO / "a" / "b"), "a/b")
        self.assertEqual(paths.rel(Path("/elsewhere/x")), "/elsewhere/x")

    def test_file_hash_is_the_sha256_of_the_bytes(self):
        with tempfile.TemporaryDirectory() as tmp:
            lock = Path(tmp) / "requirements.txt"
            lock.write_bytes(b"pkg==1.0\n")
            self.assertEqual(paths.file_hash(lock), hashlib.sha256(b"pkg==1.0\n").hexdigest())


if __name__ == "__main__":
    unittest.main()
