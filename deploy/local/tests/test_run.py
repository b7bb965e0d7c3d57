"""What `run` shows: the banner, with database passwords hidden."""

from __future__ import annotations

import unittest

from thinkbank_dev import run
from thinkbank_dev.plan import RunPlan


class RedactTest(unittest.TestCase):
    def test_a_password_is_hidden(self):
        self.assertEqual(run.redact("postgres://app:s3cret@db:5432/tb"), "postgres://app:***@db:5432/tb")

    def test_urls_without_password_are_unchanged(self):
        for url in ("postgresql://postgres@localhost/postgres?host=/x", "postgres://db/tb"):
            self.assertEqual(run.redact(url), url)


class BannerTest(unittest.TestCase):
    PLAN = RunPlan(worker_env={}, gateway_env={}, external_db=None, ready_url="http://127.0.0.1:8080/readyz",
                   base_url="http://127.0.0.1:8080", ready_timeout=120.0)

    def test_the_first_run_shows_the_new_admin_key_once(self):
        text = run.banner(self.PLAN, "postgres://u:pw@db/x", "tb_abc_def")
        self.assertIn("thinkbank is up: http://127.0.0.1:8080\n", text)
        self.assertIn("  admin key: tb_abc_def   (shown once; also in .data/admin-key, mode 0600)\n", text)
        self.assertIn("  database: postgres://u:***@db/x\n", text)
        self.assertIn("-F file=@README.md -F wait=true http://127.0.0.1:8080/api/v1/assets\n", text)

    def test_later_runs_point_at_the_key_file(self):
        text = run.banner(self.PLAN, "postgres://db/x", None)
        self.assertIn("  admin key: in .data/admin-key\n", text)
        self.assertNotIn("shown once", text)

    def test_the_launcher_mark_matches_both_ways_of_starting_it(self):
        for cmdline in ("python3 deploy/local/thinkbank_dev.py run", "python3 -m thinkbank_dev run"):
            self.assertIn(run.LAUNCHER_MARK, cmdline)


if __name__ == "__main__":
    unittest.main()
