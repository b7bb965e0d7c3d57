"""Argument parsing and dispatch: the flags the Makefile, the README and other scripts use."""

from __future__ import annotations

import unittest
from unittest import mock

from thinkbank_dev import cli
from thinkbank_dev.console import LauncherError, Shutdown

from .support import quiet_stderr


def parse(*argv: str):
    return cli.parse_args(list(argv))


class ParseArgsTest(unittest.TestCase):
    def test_test_passes_everything_after_a_bare_double_dash_to_the_runner(self):
        args = parse("test", "--", "-E", "test(search)", "--", "x")
        self.assertEqual(args.command, "test")
        self.assertEqual(args.extra, ["-E", "test(search)", "--", "x"])

    def test_make_test_without_args_passes_nothing(self):
        self.assertEqual(parse("test", "--").extra, [])
        self.assertEqual(parse("test").extra, [])

    def test_bench_takes_its_arguments_with_or_without_double_dash(self):
        args = parse("bench", "search", "3000", "--", "--flag")
        self.assertEqual((args.name, args.extra), ("search", ["3000", "--flag"]))

    def test_env_defaults_to_the_test_purpose_and_pg_to_run(self):
        self.assertEqual(parse("env").purpose, "test")
        self.assertEqual(parse("pg", "status").purpose, "run")
        self.assertEqual(parse("env", "--purpose", "run").purpose, "run")

    def test_pg_psql_forwards_arguments_after_double_dash(self):
        args = parse("pg", "psql", "--purpose", "run", "--", "-q", "-c", "SELECT 1")
        self.assertEqual((args.action, args.purpose, args.extra), ("psql", "run", ["-q", "-c", "SELECT 1"]))

    def test_run_flags(self):
        args = parse("run", "--no-build", "-q")
        self.assertTrue(args.no_build)
        self.assertTrue(args.quiet)
        args = parse("run")
        self.assertFalse(args.no_build)
        self.assertFalse(args.quiet)

    def test_setup_test_flag(self):
        self.assertTrue(parse("setup", "--test").test)
        self.assertFalse(parse("setup").test)

    def test_unknown_purpose_action_or_command_is_a_usage_error(self):
        for argv in (["env", "--purpose", "prod"], ["pg", "restart"], ["deploy"], []):
            with self.subTest(argv=argv), quiet_stderr(), self.assertRaises(SystemExit) as exit_:
                cli.parse_args(argv)
            self.assertEqual(exit_.exception.code, 2)

    def test_each_command_dispatches_to_its_module(self):
        cases = {
            ("setup",): "thinkbank_dev.provision",
            ("pg", "start"): "thinkbank_dev.postgres",
            ("env",): "thinkbank_dev.env",
            ("bench", "ingest"): "thinkbank_dev.bench",
            ("build",): "thinkbank_dev.cargo",
            ("run",): "thinkbank_dev.run",
            ("stop",): "thinkbank_dev.run",
            ("clean",): "thinkbank_dev.run",
            ("lint",): "thinkbank_dev.testing",
            ("test",): "thinkbank_dev.testing",
        }
        for argv, module in cases.items():
            with self.subTest(argv=argv):
                func = parse(*argv).func
                self.assertEqual((func.__module__, func.__name__), (module, f"cmd_{argv[0]}"))


class MainTest(unittest.TestCase):
    def test_returns_the_command_exit_code(self):
        with mock.patch.object(cli, "cmd_stop", return_value=0):
            self.assertEqual(cli.main(["stop"]), 0)

    def test_an_expected_failure_is_one_line_and_exit_1(self):
        with mock.patch.object(cli, "cmd_stop", side_effect=LauncherError("boom")), quiet_stderr() as err:
            self.assertEqual(cli.main(["stop"]), 1)
        self.assertEqual(err.getvalue(), "thinkbank: error: boom\n")

    def test_an_interrupt_exits_130(self):
        for exc in (KeyboardInterrupt(), Shutdown("SIGTERM")):
            with self.subTest(exc=exc), mock.patch.object(cli, "cmd_stop", side_effect=exc), quiet_stderr():
                self.assertEqual(cli.main(["stop"]), 130)


if __name__ == "__main__":
    unittest.main()
