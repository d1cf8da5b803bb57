"""The development users' precomputed scrypt hashes are exactly what hashing their passwords gives,
so seeding with them is the same as hashing at seed time (and every user has one)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _seed_module(name: str = "seed_dev"):
    spec = importlib.util.spec_from_file_location(f"{name}_for_test", REPO / "seeds" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_precomputed_hash_is_the_hash_of_its_password():
    seed_dev = _seed_module()
    assert set(seed_dev.DEV_HASHES) == {(email, pw) for _uid, email, pw, *_ in seed_dev.USERS}
    for (email, password), stored in seed_dev.DEV_HASHES.items():
        assert stored == seed_dev.hash_password(password, seed_dev.seed_salt(email)), email
        assert seed_dev.verify_password(password, stored)


def test_a_user_without_a_precomputed_hash_is_hashed_at_seed_time():
    seed_dev = _seed_module()
    made = seed_dev.dev_hash("new@example.com", "s3cret")
    assert seed_dev.verify_password("s3cret", made) and ("new@example.com", "s3cret") not in seed_dev.DEV_HASHES


def test_the_generated_users_precomputed_hash_is_the_hash_of_their_password():
    scale = _seed_module("scale")
    assert scale.SHARED_HASH == scale.shared_hash() and _seed_module().verify_password("password123", scale.SHARED_HASH)
