"""The command lines the launcher runs: build, lint, tests, benchmarks, and where cargo builds."""

from __future__ import annotations

import json
import unittest

from thinkbank_dev import bench, cargo, testing
from thinkbank_dev.paths import REPO

from .support import fake_tools


class CargoTest(unittest.TestCase):
    def test_build_makes_both_services_and_the_cli_in_release(self):
        self.assertEqual(cargo.build_command("cargo"), [
            "cargo", "build", "--release", "-p", "thinkbank-ai-worker", "-p", "thinkbank-gateway",
            "-p", "thinkbank-cli",
        ])

    def test_services_start_worker_first(self):
        self.assertEqual([name for name, _ in cargo.SERVICES], ["worker", "gateway"])

    def test_release_binaries_are_named_after_their_package(self):
        self.assertEqual(cargo.release_binaries(REPO / "t"), {
            "worker": REPO / "t" / "release" / "thinkbank-ai-worker",
            "gateway": REPO / "t" / "release" / "thinkbank-gateway",
        })

    def test_target_dir_comes_from_cargo_metadata(self):
        meta = json.dumps({"target_directory": "/cache/target", "packages": []})
        self.assertEqual(str(cargo.target_dir_from(0, meta, {"CARGO_TARGET_DIR": "/ignored"})), "/cache/target")

    def test_without_metadata_target_dir_falls_back_to_the_environment_then_the_repo(self):
        self.assertEqual(str(cargo.target_dir_from(101, "", {"CARGO_TARGET_DIR": "/env/t"})), "/env/t")
        self.assertEqual(cargo.target_dir_from(101, "", {}), REPO / "target")


class LintAndTestTest(unittest.TestCase):
    def test_lint_is_fmt_then_clippy_denying_warnings_then_the_compose_check(self):
        steps = testing.lint_steps("cargo", "python3")
        self.assertEqual([title for title, _, _ in steps], ["format", "clippy", "compose check"])
        self.assertEqual(steps[0][1], ["cargo", "fmt", "--all", "--check"])
        self.assertEqual(steps[0][2], "run `make fmt` to fix")
        self.assertEqual(steps[1][1], ["cargo", "clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])
        self.assertEqual(steps[2][1], ["python3", str(REPO / "deploy/docker/check_compose.py")])

    def test_the_launcher_unit_tests_run_first_with_the_package_importable(self):
        self.assertEqual(testing.launcher_unit_test_command("python3"), [
            "python3", "-m", "unittest", "discover", "-s", str(REPO / "deploy/local/tests"),
            "-t", str(REPO / "deploy/local"),
        ])

    def test_tests_run_with_nextest_when_installed_else_cargo_test(self):
        self.assertEqual(testing.test_command("cargo", ["-E", "test(x)"], nextest=True), (
            "tests (nextest)", ["cargo", "nextest", "run", "--workspace", "--no-fail-fast", "-E", "test(x)"]))
        self.assertEqual(testing.test_command("cargo", [], nextest=False), (
            "tests (cargo test)", ["cargo", "test", "--workspace", "--no-fail-fast"]))

    def test_the_test_environment_is_the_contract_the_rust_tests_read(self):
        env = testing.test_env(fake_tools(), "postgresql://db")
        self.assertEqual(set(env), {
            "THINKBANK_TEST_DATABASE_URL", "THINKBANK_EMBED_MODEL_DIR", "THINKBANK_TEST_PYTHON",
            "THINKBANK_GRPCURL", "THINKBANK_REPO_ROOT", "THINKBANK_CHROMIUM",
        })
        self.assertEqual(env["THINKBANK_TEST_DATABASE_URL"], "postgresql://db")
        self.assertEqual(env["THINKBANK_EMBED_MODEL_DIR"], "/models/minilm")
        self.assertEqual(env["THINKBANK_TEST_PYTHON"], "/venv/bin/python")
        self.assertEqual(env["THINKBANK_GRPCURL"], "/tools/grpcurl")
        self.assertEqual(env["THINKBANK_REPO_ROOT"], str(REPO))


class BenchTest(unittest.TestCase):
    def test_a_benchmark_is_a_release_binary_of_thinkbank_bench(self):
        self.assertEqual(bench.bench_command("cargo", "ingest", ["50"]), [
            "cargo", "run", "--release", "-p", "thinkbank-bench", "--bin", "bench-ingest", "--", "50",
        ])


if __name__ == "__main__":
    unittest.main()
