"""Profiles and limits: local changes nothing; public refuses with a message before anything starts."""

import re

import pytest

from lib.models import architectures
from lib.store import profile

PUBLIC = {"MNIST_STUDIO_PROFILE": "public"}


def test_local_is_the_default_and_limits_nothing():
    local = profile.current({})
    assert local.name == "local" and not local.public
    huge = dict(epochs=500, train_images=60_000, validation_split=0.0, limit=None, params=10**8)
    assert profile.check_training(local, **huge) == ""
    assert profile.check_disk(local, workspace_bytes=10**12, total_bytes=10**12, adding_bytes=10**9) == ""
    assert profile.describe(local) == []


def test_limits_come_from_the_environment():
    env = {**PUBLIC, "MNIST_STUDIO_MAX_PARAMS": "5000", "MNIST_STUDIO_IDLE_DAYS": "0.5",
           "MNIST_STUDIO_MAX_QUEUE": "3", "MNIST_STUDIO_GALLERY_DIR": "/srv/gallery"}
    limits = profile.current(env).limits
    assert (limits.max_params, limits.idle_days, limits.max_queue, limits.gallery_dir) == (5000, 0.5, 3, "/srv/gallery")
    assert limits.max_epoch_images == profile.Limits().max_epoch_images  # unset: the default


@pytest.mark.parametrize("env, expected", [
    ({"MNIST_STUDIO_PROFILE": "shared"}, "use 'local' (one person) or 'public'"),
    ({**PUBLIC, "MNIST_STUDIO_MAX_PARAMS": "lots"}, "MNIST_STUDIO_MAX_PARAMS is 'lots'; it must be a number"),
    ({**PUBLIC, "MNIST_STUDIO_IDLE_DAYS": "-1"}, "MNIST_STUDIO_IDLE_DAYS is '-1'; it must be 0 or more"),
])
def test_a_bad_setting_is_named_in_the_message(env, expected):
    with pytest.raises(profile.SettingError, match=re.escape(expected)):
        profile.current(env)


def test_public_defaults_let_every_mnist_tutorial_lesson_run():
    public = profile.current(PUBLIC)
    for name, arch in architectures.ZOO.items():
        tutorial = arch.tutorial or {"epochs": 5, "validation_split": 0.1}
        params = sum(row.params for row in architectures.summarize(arch.layer_list(), (28, 28, 1), 10))
        message = profile.check_training(public, epochs=tutorial["epochs"], train_images=60_000,
                                         validation_split=tutorial["validation_split"], limit=None, params=params)
        assert message == "", name


def test_an_oversized_run_is_refused_with_what_to_change():
    public = profile.current(PUBLIC)
    message = profile.check_training(public, epochs=200, train_images=60_000, validation_split=0.2, limit=None,
                                     params=10_000)
    assert message.startswith("This run would train on 9,600,000 images (200 epochs x 48,000)")
    assert "Use at most 62 epochs, or limit the training images." in message
    assert profile.check_training(public, epochs=200, train_images=60_000, validation_split=0.2, limit=5_000,
                                  params=10_000) == ""  # a limit brings it under budget
    big = profile.check_training(public, epochs=1, train_images=60_000, validation_split=0.2, limit=None,
                                 params=2_000_000)
    assert big.startswith("This model has 2,000,000 parameters; this shared app allows 1,000,000.")


def test_disk_quota_messages_name_the_workspace_or_the_whole_app():
    public = profile.current({**PUBLIC, "MNIST_STUDIO_WORKSPACE_QUOTA_MB": "10", "MNIST_STUDIO_TOTAL_QUOTA_MB": "15"})
    mb = profile.MB
    assert profile.check_disk(public, workspace_bytes=5 * mb, total_bytes=5 * mb, adding_bytes=4 * mb) == ""
    mine = profile.check_disk(public, workspace_bytes=8 * mb, total_bytes=8 * mb, adding_bytes=4 * mb)
    assert mine.startswith("Your workspace holds 8.0 MB; this would add 4.0 MB and the limit is 10 MB.")
    full = profile.check_disk(public, workspace_bytes=1 * mb, total_bytes=14 * mb, adding_bytes=4 * mb)
    assert full.startswith("This shared app's storage is full (14 of 15 MB).")
    assert any("10 MB of runs per workspace" in line for line in profile.describe(public))
