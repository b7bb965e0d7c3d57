"""What `run` starts: ports, listen addresses, URLs and each service's environment."""

from __future__ import annotations

import socket
import unittest

from thinkbank_dev import plan
from thinkbank_dev.console import LauncherError
from thinkbank_dev.paths import OBJECT_DIR

from .support import fake_tools

SECRETS = {
    "THINKBANK_INTERNAL_TOKEN": "internal",
    "THINKBANK_JWT_SECRET": "jwt",
    "THINKBANK_AUDIT_KEY": "audit",
    "THINKBANK_BOOTSTRAP_ADMIN_KEY": "tb_admin",
}


def plan_for(user: dict):
    return plan.plan_services(fake_tools(), user, lambda: SECRETS)


class EnvIntTest(unittest.TestCase):
    def test_unset_or_empty_gives_the_default(self):
        self.assertEqual(plan.env_int("P", 8080, environ={}), 8080)
        self.assertEqual(plan.env_int("P", 8080, environ={"P": ""}), 8080)

    def test_a_valid_value_is_used(self):
        self.assertEqual(plan.env_int("P", 8080, environ={"P": "9000"}), 9000)
        self.assertEqual(plan.env_int("P", 1, 86400, "seconds", {"P": "86400"}), 86400)

    def test_malformed_or_out_of_range_values_name_the_variable(self):
        for raw in ("abc", "0", "-1", "65536", "80.5"):
            with self.subTest(raw=raw), self.assertRaises(LauncherError) as err:
                plan.env_int("THINKBANK_GATEWAY_PORT", 8080, environ={"THINKBANK_GATEWAY_PORT": raw})
            self.assertEqual(str(err.exception), f"THINKBANK_GATEWAY_PORT={raw!r} is not a port number")


class LocalUrlTest(unittest.TestCase):
    def test_wildcard_addresses_are_reached_through_loopback(self):
        self.assertEqual(plan.local_url("0.0.0.0:8080"), "http://127.0.0.1:8080")
        self.assertEqual(plan.local_url("[::]:8080"), "http://127.0.0.1:8080")
        self.assertEqual(plan.local_url(":8080"), "http://127.0.0.1:8080")

    def test_a_specific_address_is_kept_and_ipv6_is_bracketed(self):
        self.assertEqual(plan.local_url("127.0.0.1:50051"), "http://127.0.0.1:50051")
        self.assertEqual(plan.local_url("[::1]:8080"), "http://[::1]:8080")


class PlanServicesTest(unittest.TestCase):
    def test_defaults(self):
        p = plan_for({})
        self.assertEqual(p.worker_env["THINKBANK_WORKER_LISTEN"], "127.0.0.1:50051")
        self.assertEqual(p.worker_env["THINKBANK_WORKER_ADMIN_LISTEN"], "127.0.0.1:9464")
        self.assertEqual(p.worker_env["THINKBANK_EMBED_MODEL_DIR"], "/models/minilm")
        self.assertEqual(p.worker_env["THINKBANK_OBJECT_STORE_DIR"], str(OBJECT_DIR))
        self.assertEqual(p.gateway_env["THINKBANK_GATEWAY_LISTEN"], "127.0.0.1:8080")
        self.assertEqual(p.gateway_env["THINKBANK_WORKER_URL"], "http://127.0.0.1:50051")
        self.assertEqual((p.base_url, p.ready_url), ("http://127.0.0.1:8080", "http://127.0.0.1:8080/readyz"))
        self.assertEqual(p.ready_timeout, 120.0)
        self.assertIsNone(p.external_db)
        self.assertNotIn("THINKBANK_DATABASE_URL", p.worker_env)

    def test_the_worker_gets_only_the_internal_token_and_the_gateway_every_secret(self):
        p = plan_for({})
        self.assertEqual(p.worker_env["THINKBANK_INTERNAL_TOKEN"], "internal")
        for key in ("THINKBANK_JWT_SECRET", "THINKBANK_AUDIT_KEY", "THINKBANK_BOOTSTRAP_ADMIN_KEY"):
            self.assertNotIn(key, p.worker_env)
        self.assertLessEqual(SECRETS.items(), p.gateway_env.items())

    def test_ports_move_the_listen_addresses_and_the_urls(self):
        p = plan_for({"THINKBANK_WORKER_PORT": "6001", "THINKBANK_GATEWAY_PORT": "6002",
                      "THINKBANK_READY_TIMEOUT": "5"})
        self.assertEqual(p.gateway_env["THINKBANK_WORKER_URL"], "http://127.0.0.1:6001")
        self.assertEqual(p.ready_url, "http://127.0.0.1:6002/readyz")
        self.assertEqual(p.ready_timeout, 5.0)

    def test_what_the_user_exported_wins(self):
        user = {"THINKBANK_GATEWAY_LISTEN": "0.0.0.0:9090", "THINKBANK_WORKER_LISTEN": "[::]:7000",
                "THINKBANK_JWT_SECRET": "mine", "THINKBANK_OBJECT_STORE_DIR": "/objects"}
        p = plan_for(user)
        self.assertEqual(p.base_url, "http://127.0.0.1:9090")
        self.assertEqual(p.gateway_env["THINKBANK_WORKER_URL"], "http://127.0.0.1:7000")
        self.assertEqual(p.gateway_env["THINKBANK_JWT_SECRET"], "mine")
        self.assertEqual(p.worker_env["THINKBANK_OBJECT_STORE_DIR"], "/objects")

    def test_a_database_url_means_no_embedded_cluster(self):
        p = plan_for({"DATABASE_URL": "postgres://db/x"})
        self.assertEqual(p.external_db, "postgres://db/x")
        self.assertEqual(p.worker_env["THINKBANK_DATABASE_URL"], "postgres://db/x")
        self.assertEqual(p.gateway_env["THINKBANK_DATABASE_URL"], "postgres://db/x")
        both = plan_for({"DATABASE_URL": "postgres://db/x", "THINKBANK_DATABASE_URL": "postgres://db/y"})
        self.assertEqual(both.external_db, "postgres://db/y")

    def test_a_mistyped_port_fails_before_the_secrets_are_made(self):
        def must_not_load():
            raise AssertionError("secrets loaded")

        with self.assertRaises(LauncherError):
            plan.plan_services(fake_tools(), {"THINKBANK_GATEWAY_PORT": "80a"}, must_not_load)


class CheckPortFreeTest(unittest.TestCase):
    def test_a_port_in_use_is_a_clear_error_naming_the_variable(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            listen = f"127.0.0.1:{taken.getsockname()[1]}"
            with self.assertRaises(LauncherError) as err:
                plan.check_port_free(listen, "THINKBANK_GATEWAY_PORT")
        self.assertIn(f"cannot listen on {listen}", str(err.exception))
        self.assertIn("THINKBANK_GATEWAY_PORT=...", str(err.exception))

    def test_a_free_port_passes(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        plan.check_port_free(f"127.0.0.1:{port}", "X")


if __name__ == "__main__":
    unittest.main()
