"""The rigid tasks on C MuJoCo and on MuJoCo Warp: control steps per second by number of environments, the
agreement of the two simulators, and end-to-end PPO throughput with HEPi.

Run: ``python -m benchmarks.warp_envs [--device cuda] [--quick]`` (needs ``pip install "geomanip[warp]"``).

1. **Agreement** (the reference of this run): the same episodes (one shape per environment, the same seeds)
   stepped with the same random actions on C MuJoCo and on Warp for ``--agree-steps`` control steps; the
   largest differences of the observed positions and velocities, of the rewards, and whether success flags
   and episode ends matched.
2. **Control steps/s** against the number of environments: C MuJoCo (:class:`~geomanip.envs.vector.RigidVectorEnv`,
   one thread) and Warp on ``--device``, random actions, observations, rewards and infos included (everything
   SB3 receives, so Warp's rows include the copy of observations to the host). Warp's first step compiles its
   kernels (cached on disk afterwards); it is timed apart and not counted.
3. **PPO end to end** (``--ppo-steps``): ``geomanip train`` with HEPi on each simulator, wall-clock environment
   steps per second including updates and the final evaluation.

Warp's CPU device runs each kernel launch serially and is meant for tests and debugging: its rows are for
completeness (a few environments, a few steps), not a way to train.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import numpy as np
import torch

from geomanip.envs.vector import make_vector_env
from geomanip.envs.warp_batch import warp_available


def agreement(task: str, device: str, num_envs: int, steps: int, seed: int = 0) -> dict:
    """Largest Warp - C MuJoCo differences over ``steps`` control steps of random actions."""
    warp = make_vector_env(task, num_envs, seed=seed, backend="warp", device=device)
    c = make_vector_env(task, num_envs, seed=seed, fixed_shapes=True)
    warp.reset(), c.reset()
    rng = np.random.default_rng(seed)
    out = {"pos": 0.0, "vel": 0.0, "reward": 0.0, "success_equal": True, "dones_equal": True}
    for _ in range(steps):
        a = rng.uniform(-1, 1, (num_envs, *c.action_space.shape)).astype(np.float32)
        (ow, rw, dw, iw), (oc, rc, dc, ic) = warp.step(a), c.step(a)
        for k in oc:
            key = "vel" if k.endswith("vel") else "pos"
            out[key] = max(out[key], float(np.abs(ow[k] - oc[k]).max()))
        out["reward"] = max(out["reward"], float(np.abs(rw - rc).max()))
        out["success_equal"] &= [i["is_success"] for i in iw] == [i["is_success"] for i in ic]
        out["dones_equal"] &= bool((dw == dc).all())
    warp.close(), c.close()
    return out


def control_rate(task: str, backend: str, device: str, num_envs: int, steps: int, seed: int = 0) -> dict:
    """Control steps per second (all environments together) over ``steps`` steps after two untimed ones."""
    vec = make_vector_env(task, num_envs, seed=seed, backend=backend, device=device)
    vec.reset()
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (steps + 2, num_envs, *vec.action_space.shape)).astype(np.float32)
    t0 = time.perf_counter()
    vec.step(actions[0])  # compiles the kernels
    first = time.perf_counter() - t0
    vec.step(actions[1])  # on a GPU, captures the step as a CUDA graph
    t0, c0 = time.perf_counter(), time.process_time()
    for a in actions[2:]:
        vec.step(a)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    vec.close()
    return {"steps_per_s": num_envs * steps / wall, "cpu_per_step_us": cpu / (num_envs * steps) * 1e6, "first": first}


def ppo_rate(task: str, sim: str, device: str, n_envs: int, steps: int, batch_size: int) -> dict:
    """Environment steps per wall-clock second of a HEPi PPO run (updates and the final evaluation included)."""
    from geomanip.policies.training import configure, run

    with tempfile.TemporaryDirectory() as out:
        cfg = configure(
            task=task,
            policy="hepi",
            sim=sim,
            device=device,
            n_envs=n_envs,
            total_steps=steps,
            eval_every=steps,
            eval_episodes=4,
            batch_size=batch_size,
            threads=1 if device == "cpu" else 0,
            progress=False,
            out=out,
        )
        t0 = time.perf_counter()
        summary = run(cfg)
        wall = time.perf_counter() - t0
    return {"steps_per_s": summary["steps"] / wall, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="RigidInsertion-v0")
    parser.add_argument("--device", default="cpu", help="Warp's device: cpu or cuda")
    parser.add_argument("--num-envs", type=int, nargs="+", default=None, help="default: 1 16 256 4096")
    parser.add_argument("--warp-cpu-envs", type=int, nargs="+", default=[1, 16], help="Warp rows on the CPU device")
    parser.add_argument("--steps", type=int, default=20, help="timed control steps per row")
    parser.add_argument("--agree-envs", type=int, default=8)
    parser.add_argument("--agree-steps", type=int, default=50)
    parser.add_argument("--ppo-steps", type=int, default=0, help="PPO steps per simulator (0: no PPO rows)")
    parser.add_argument("--ppo-envs", type=int, default=1024)
    parser.add_argument("--ppo-batch-size", type=int, default=4096)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 environments, 2 steps")
    args = parser.parse_args()
    reason = warp_available()
    if reason is not None:
        raise SystemExit(reason)
    torch.set_num_threads(1)
    num_envs = args.num_envs or [1, 16, 256, 4096]
    if args.quick:
        num_envs, args.warp_cpu_envs, args.steps, args.agree_envs, args.agree_steps = [2], [2], 2, 2, 2
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") and torch.cuda.is_available() else "none"
    print(f"{args.task}; {platform.machine()}, {torch.get_num_threads()} torch thread(s); GPU: {gpu}")

    a = agreement(args.task, args.device, args.agree_envs, args.agree_steps)
    print(
        f"\nagreement, Warp ({args.device}) vs C MuJoCo, {args.agree_envs} environments x {args.agree_steps} steps "
        f"of random actions: max |d position| {a['pos']:.1e} m, |d velocity| {a['vel']:.1e} m/s, "
        f"|d reward| {a['reward']:.1e}; success flags equal: {a['success_equal']}, episode ends equal: "
        f"{a['dones_equal']}"
    )

    print(f"\n{'simulator':<22} | {'envs':>5} | {'control steps/s':>15} | {'CPU us/step':>11} | first step s")
    print("-" * 76)
    for n in num_envs:
        r = control_rate(args.task, "mujoco", "cpu", n, args.steps)
        print(f"{'C MuJoCo (1 thread)':<22} | {n:>5} | {r['steps_per_s']:>15.0f} | {r['cpu_per_step_us']:>11.1f} |")
    warp_envs = args.warp_cpu_envs if args.device == "cpu" else num_envs
    for n in warp_envs:
        r = control_rate(args.task, "warp", args.device, n, args.steps)
        print(
            f"{'Warp (' + args.device + ')':<22} | {n:>5} | {r['steps_per_s']:>15.0f} | {r['cpu_per_step_us']:>11.1f} "
            f"| {r['first']:.1f}"
        )

    if args.ppo_steps:
        print(f"\nHEPi PPO, {args.ppo_steps} steps, {args.ppo_envs} environments, batch {args.ppo_batch_size}")
        for sim, device in (("mujoco", args.device), ("warp", args.device)):
            r = ppo_rate(args.task, sim, device, args.ppo_envs, args.ppo_steps, args.ppo_batch_size)
            print(f"  sim {sim:<6} (policy on {device}): {r['steps_per_s']:.0f} env steps/s ({r['wall']:.0f} s)")


if __name__ == "__main__":
    main()
