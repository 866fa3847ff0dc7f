"""Gymnasium registration: namespaced ids and their bare aliases, time limits, render rates, the GL backend."""

import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from geomanip import envs

BARE = [*envs.RIGID_TASKS, *envs.DEFORMABLE_TASKS]


def test_every_task_is_registered_in_the_namespace_and_under_its_bare_id():
    assert len(BARE) == 7 and set(envs.TASK_IDS) == set(BARE)
    for bare in BARE:
        namespaced = envs.TASK_IDS[bare]
        assert namespaced == f"geomanip/{bare}"
        spec, alias = gym.spec(namespaced), gym.spec(bare)
        assert spec.namespace == "geomanip" and alias.namespace is None
        assert spec.entry_point == alias.entry_point == {**envs.RIGID_TASKS, **envs.DEFORMABLE_TASKS}[bare]
        assert spec.max_episode_steps == alias.max_episode_steps == envs.default_horizon(bare)
        assert (spec.vector_entry_point is not None) == (bare in envs.RIGID_TASKS)
        # Entry points are strings, so the specs serialise.
        assert gym.envs.registration.EnvSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("bare", BARE)
def test_make_gives_the_task_with_a_time_limit_at_its_horizon(bare):
    env = gym.make(envs.TASK_IDS[bare])
    assert isinstance(env.unwrapped, envs.MujocoGraphEnv)
    assert type(env.unwrapped) is type(gym.make(bare).unwrapped)
    assert env.spec.max_episode_steps == env.unwrapped.horizon == envs.default_horizon(bare)
    assert env.spec.id == envs.TASK_IDS[bare]
    env.close()


def test_default_horizon_takes_both_ids_and_refuses_unknown_ones():
    assert envs.default_horizon("RopeClosing-v0") == envs.default_horizon("geomanip/RopeClosing-v0") == 200
    with pytest.raises(KeyError, match="unknown task"):
        envs.default_horizon("geomanip/Nope-v0")


def episode_length(env: gym.Env, seed: int = 0, limit: int = 1000) -> int:
    """Steps until the episode ends, asserting it ends by truncation alone and never earlier."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    for t in range(1, limit + 1):
        *_, terminated, truncated, info = env.step(0.3 * env.action_space.sample())
        assert not terminated and not info["unstable"]
        if truncated:
            return t
    raise AssertionError(f"no truncation within {limit} steps")


@pytest.mark.parametrize("env_id", ["geomanip/RigidPushing-v0", "geomanip/RopeClosing-v0"])
def test_max_episode_steps_truncates_exactly_there(env_id):
    env = gym.make(env_id, max_episode_steps=7)
    assert env.spec.max_episode_steps == 7
    assert episode_length(env) == 7
    assert episode_length(env, seed=1) == 7  # and again after a reset


def test_horizon_with_max_episode_steps_lengthens_episodes():
    # Beyond the registered limit both must change: the environment truncates itself at its horizon.
    n = envs.default_horizon("RigidSliding-v0") + 5
    assert episode_length(gym.make("geomanip/RigidSliding-v0", horizon=n, max_episode_steps=n)) == n
    assert episode_length(gym.make("geomanip/ClothHanging-v0", horizon=4, max_episode_steps=4)) == 4


def test_the_final_step_reward_terms_fall_on_the_horizon():
    # RopeClosing pays its "ends" term in the last final_steps steps of the horizon only.
    env = gym.make("geomanip/RopeClosing-v0", horizon=6, max_episode_steps=6, final_steps=2)
    env.reset(seed=0)
    ends = [env.step(np.zeros(4))[-1]["reward_ends"] for _ in range(6)]
    assert all(e == 0.0 for e in ends[:4]) and all(e < 0.0 for e in ends[4:])


@pytest.mark.parametrize("bare", BARE)
def test_render_fps_is_the_control_rate(bare):
    env = gym.make(envs.TASK_IDS[bare])
    # Gymnasium reads the class's metadata before any environment exists; the instance's after a reset.
    assert type(env.unwrapped).metadata["render_fps"] == env.metadata["render_fps"]
    env.reset(seed=0)
    assert env.metadata["render_fps"] == pytest.approx(1.0 / env.unwrapped.dt, rel=1e-12)
    expected = 25 if bare in envs.RIGID_TASKS else 50
    assert env.metadata["render_fps"] == expected and isinstance(env.metadata["render_fps"], int)
    env.close()


def test_render_fps_follows_non_default_control_periods():
    rigid = gym.make("geomanip/RigidPushing-v0", frame_skip=4)
    rigid.reset(seed=0)
    assert rigid.unwrapped.dt == pytest.approx(0.02) and rigid.metadata["render_fps"] == 50
    # A 3 ms step does not divide the 20 ms control period: 7 steps, 21 ms, known before the first reset.
    rope = gym.make("geomanip/RopeClosing-v0", timestep=0.003)
    assert rope.metadata["render_fps"] == pytest.approx(1 / 0.021)
    rope.reset(seed=0)
    assert rope.metadata["render_fps"] == pytest.approx(1.0 / rope.unwrapped.dt)
    # The class's value is untouched.
    assert envs.RopeClosingEnv.metadata["render_fps"] == 50


def mujoco_gl_after_import(platform: str, **display: str) -> str:
    """``MUJOCO_GL`` after ``import geomanip.envs`` in a fresh interpreter with ``sys.platform`` set to
    ``platform``, no GL-related variables in its environment but ``display``."""
    environ = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL")}
    environ.update(display)
    # Gymnasium's import of multiprocessing would load the faked platform's modules: import it for the real one
    # first (it does not read MUJOCO_GL; MuJoCo, which does, is imported by geomanip.envs).
    script = (
        f"import os, sys, gymnasium\nsys.platform = {platform!r}\nimport geomanip.envs\n"
        "print(os.environ.get('MUJOCO_GL', '-'))"
    )
    out = subprocess.run([sys.executable, "-c", script], env=environ, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the import must run on a Linux machine")
def test_mujoco_gl_is_egl_only_on_headless_linux():
    assert mujoco_gl_after_import("linux") == "egl"
    assert mujoco_gl_after_import("darwin") == "-"
    assert mujoco_gl_after_import("win32") == "-"
    assert mujoco_gl_after_import("linux", WAYLAND_DISPLAY="wayland-0") == "-"
    assert mujoco_gl_after_import("linux", MUJOCO_GL="osmesa") == "osmesa"
