"""Which system packages setup would install, and reading dpkg's answer."""

from __future__ import annotations

import unittest
from unittest import mock

from thinkbank_dev import system


class MissingPackagesTest(unittest.TestCase):
    def test_one_sorted_entry_per_package_of_the_missing_programs(self):
        found = {"pdfinfo"}.__contains__
        self.assertEqual(system.missing_packages(system.SYSTEM_PACKAGES, found), ["poppler-utils", "tesseract-ocr"])

    def test_nothing_when_every_program_is_found(self):
        self.assertEqual(system.missing_packages(system.SYSTEM_PACKAGES, lambda _: True), [])

    def test_a_chromium_named_by_thinkbank_chromium_counts_as_found(self):
        with mock.patch.object(system, "on_path", return_value=False), \
                mock.patch.dict("os.environ", {"THINKBANK_CHROMIUM": "/opt/chromium"}):
            self.assertEqual(system.missing_packages(system.BROWSER_TEST_PACKAGES, system.browser_program_found),
                             ["nodejs", "npm"])


class DpkgTest(unittest.TestCase):
    PACKAGES = ["manpages", "manpages-dev"]

    def test_every_package_must_be_installed(self):
        self.assertTrue(system.dpkg_all_installed(0, "installed installed ", self.PACKAGES))
        self.assertFalse(system.dpkg_all_installed(0, "installed not-installed ", self.PACKAGES))
        self.assertFalse(system.dpkg_all_installed(0, "installed ", self.PACKAGES))

    def test_an_unknown_package_fails_dpkg_query(self):
        self.assertFalse(system.dpkg_all_installed(1, "installed ", self.PACKAGES))


if __name__ == "__main__":
    unittest.main()
