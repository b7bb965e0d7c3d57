"""The local secrets: made once, private, and completed when a later version adds one."""

from __future__ import annotations

import json
import re
import stat
import tempfile
import unittest
from pathlib import Path

from thinkbank_dev import credentials

KEYS = {"THINKBANK_INTERNAL_TOKEN", "THINKBANK_JWT_SECRET", "THINKBANK_AUDIT_KEY", "THINKBANK_BOOTSTRAP_ADMIN_KEY"}


class LocalSecretsTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.secrets_file = Path(tmp.name) / "data" / "secrets.json"
        self.admin_key_file = Path(tmp.name) / "data" / "admin-key"

    def load(self):
        return credentials.local_secrets(self.secrets_file, self.admin_key_file)

    def test_the_first_call_makes_them_and_later_calls_keep_them(self):
        made, new = self.load()
        self.assertTrue(new)
        self.assertEqual(set(made), KEYS)
        kept, new = self.load()
        self.assertFalse(new)
        self.assertEqual(kept, made)

    def test_the_files_are_private_and_the_admin_key_is_written_alone(self):
        made, _ = self.load()
        for path in (self.secrets_file, self.admin_key_file):
            self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o600, path)
        self.assertEqual(self.admin_key_file.read_text(), made["THINKBANK_BOOTSTRAP_ADMIN_KEY"] + "\n")

    def test_token_shapes(self):
        made, _ = self.load()
        self.assertRegex(made["THINKBANK_BOOTSTRAP_ADMIN_KEY"], r"^tb_[a-z0-9]{12}_[A-Za-z0-9]{32}$")
        self.assertRegex(made["THINKBANK_INTERNAL_TOKEN"], r"^[A-Za-z0-9]{40}$")
        self.assertRegex(made["THINKBANK_JWT_SECRET"], r"^[A-Za-z0-9]{48}$")
        self.assertRegex(made["THINKBANK_AUDIT_KEY"], r"^[A-Za-z0-9]{48}$")

    def test_an_older_file_gains_the_audit_key_and_keeps_the_rest(self):
        self.secrets_file.parent.mkdir(parents=True)
        old = {"THINKBANK_INTERNAL_TOKEN": "a", "THINKBANK_JWT_SECRET": "b", "THINKBANK_BOOTSTRAP_ADMIN_KEY": "c"}
        self.secrets_file.write_text(json.dumps(old))
        kept, new = self.load()
        self.assertFalse(new)
        self.assertEqual({k: kept[k] for k in old}, old)
        self.assertTrue(re.fullmatch(r"[A-Za-z0-9]{48}", kept["THINKBANK_AUDIT_KEY"]))
        self.assertEqual(json.loads(self.secrets_file.read_text()), kept)
        self.assertFalse(self.admin_key_file.exists())


if __name__ == "__main__":
    unittest.main()
