"""Finding a cluster from its postmaster.pid, and the URI given to sqlx and psql."""

from __future__ import annotations

import os
import tempfile
import unittest
from pathlib import Path
from unittest import mock

from thinkbank_dev import postgres

from .support import needs_proc


def postmaster(pid: str, port: str = "5432", socket_dir: str = "", host: str = "") -> list:
    # postmaster.pid: pid, data dir, start time, port, socket dir, listen address, key, status
    return [pid, "/data/pg-run", "1700000000", port, socket_dir, host, "  1234  5678", "ready"]


class ParsePostmasterPidTest(unittest.TestCase):
    def test_unix_socket_on_the_default_port(self):
        state = postgres.parse_postmaster_pid(postmaster("4242", socket_dir="/data/pg-run"))
        self.assertEqual(state.pid, 4242)
        # sqlx rejects an empty authority, hence localhost before host=.
        self.assertEqual(state.uri, "postgresql://postgres@localhost/postgres?host=/data/pg-run")

    def test_unix_socket_on_another_port_names_it(self):
        state = postgres.parse_postmaster_pid(postmaster("7", port="5433", socket_dir="/s"))
        self.assertEqual(state.uri, "postgresql://postgres@localhost/postgres?host=/s&port=5433")

    def test_tcp_only_uses_the_listen_address_or_loopback(self):
        self.assertEqual(postgres.parse_postmaster_pid(postmaster("7", port="6000", host="10.0.0.5")).uri,
                         "postgresql://postgres@10.0.0.5:6000/postgres")
        self.assertEqual(postgres.parse_postmaster_pid(postmaster("7", port="6000")).uri,
                         "postgresql://postgres@127.0.0.1:6000/postgres")

    def test_a_file_with_only_the_pid_line_still_parses(self):
        self.assertEqual(postgres.parse_postmaster_pid(["12"]).pid, 12)

    def test_a_missing_or_malformed_pid_line_is_an_error(self):
        with self.assertRaises(IndexError):
            postgres.parse_postmaster_pid([])
        with self.assertRaises(ValueError):
            postgres.parse_postmaster_pid(["not-a-pid"])


class PgRunningTest(unittest.TestCase):
    def running_with(self, text: str):
        with tempfile.TemporaryDirectory() as tmp:
            if text:
                (Path(tmp) / "postmaster.pid").write_text(text)
            with mock.patch.object(postgres, "pg_dir", return_value=Path(tmp)):
                return postgres.pg_running("run")

    def test_no_postmaster_pid_means_not_running(self):
        self.assertIsNone(self.running_with(""))

    def test_a_garbled_postmaster_pid_means_not_running(self):
        self.assertIsNone(self.running_with("garbage\n"))

    @needs_proc
    def test_a_pid_that_is_not_a_postgres_means_not_running(self):
        # This test process is alive but is not a postgres: a stale file whose pid was reused.
        self.assertIsNone(self.running_with("\n".join(postmaster(str(os.getpid()), socket_dir="/s"))))


if __name__ == "__main__":
    unittest.main()
