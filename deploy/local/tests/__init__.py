"""Unit tests of the dev launcher's pure parts (stdlib unittest; `make test` runs them first).

Run alone from the repo root:
    python3 -m unittest discover -s deploy/local/tests -t deploy/local
"""
