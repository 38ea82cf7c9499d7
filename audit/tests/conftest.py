from __future__ import annotations

from accounts.tests.fixtures import *  # noqa: F403  (the standard people: alice, bob, charlie, steward, admin)
