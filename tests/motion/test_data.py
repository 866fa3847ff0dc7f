import gzip

import numpy as np
import pytest
import torch

from geomanip.motion.data.datasets import NBodyWindows, PedestrianWindows, SizeBatches, agent_counts, pad_collate
from geomanip.motion.data.eth_ucy import (
    SCENES,
    default_root,
    file_stem,
    load_scene_file,
    load_split,
    make_frame_samples,
    make_windows,
    scene_files,
)
from geomanip.motion.data.nbody import NBodyConfig, default_config, energy, simulate, write_dataset
from geomanip.motion.data.nri import find_nri_splits


def test_charged_particles_conserve_energy_and_momentum_without_clipping():
    cfg = NBodyConfig(max_force=None, dt=0.0005, sample_every=20, num_frames=30)
    loc, vel, charges = simulate(cfg, 40, seed=0)
    momentum = vel.sum(2)  # equal masses
    np.testing.assert_allclose(momentum, momentum[:, :1].repeat(30, 1), atol=1e-10)
    e = energy(cfg, loc, vel, charges)
    # Close encounters of opposite charges are stiff; judge the systems that stay apart.
    pair = np.linalg.norm(loc[:, :, :, None] - loc[:, :, None], axis=-1) + np.eye(5) * 1e9
    apart = pair.min(axis=(1, 2, 3)) > 0.2
    assert apart.sum() >= 10
    drift = np.abs(e - e[:, :1]) / np.abs(e[:, :1]).clip(min=1e-3)
    assert drift[apart].max() < 1e-4


@pytest.mark.parametrize("system", ["springs", "gravity"])
def test_other_systems_conserve_energy(system):
    cfg = NBodyConfig(system=system, num_particles=5, max_force=None, dt=0.0005, sample_every=20, num_frames=20)
    loc, vel, params = simulate(cfg, 10, seed=0)
    e = energy(cfg, loc, vel, params)
    assert (np.abs(e - e[:, :1]) / np.abs(e[:, :1]).clip(min=1e-3)).max() < 1e-4


def test_clipping_limits_the_force():
    cfg = default_config("charged")
    loc, _, _ = simulate(cfg, 50, seed=1)
    assert np.isfinite(loc).all() and loc.shape == (50, 49, 5, 3)


def test_datasets_are_reproducible_and_shaped(tmp_path):
    cfg = NBodyConfig(num_frames=31, sample_every=10)
    paths = write_dataset(cfg, tmp_path / "a", {"train": 6, "val": 3}, progress=False)
    again = write_dataset(cfg, tmp_path / "b", {"train": 6, "val": 3}, progress=False)
    a, b = np.load(paths["train"]), np.load(again["train"])
    np.testing.assert_array_equal(a["loc"], b["loc"])
    assert a["loc"].shape == (6, 31, 5, 3) and a["charges"].shape == (6, 5)
    assert not np.array_equal(np.load(paths["val"])["loc"][:3], a["loc"][:3])  # splits have their own seeds
    ds = NBodyWindows(paths["train"], past=10, future=20)
    item = ds[0]
    assert item["past"].shape == (5, 10, 3) and item["future"].shape == (5, 20, 3) and item["mask"].all()
    with pytest.raises(ValueError, match="fewer than past"):
        NBodyWindows(paths["train"], past=20, future=20)


# Samples per held-out scene's test split, with the defaults (8 + 12 frames, stride 1, radius 5 m).
DOCUMENTED_TEST_COUNTS = {"eth": 364, "hotel": 1197, "univ": 24334, "zara1": 2356, "zara2": 5910}


@pytest.mark.parametrize("scene", ["eth", "hotel", "zara1"])
def test_eth_ucy_test_counts_and_metres(scene):
    windows = load_split(scene, "test")
    assert len(windows) == DOCUMENTED_TEST_COUNTS[scene]
    sample = windows.trajectories[0]
    assert sample.shape[1:] == (20, 2)
    steps = np.linalg.norm(np.diff(np.concatenate(windows.trajectories), axis=1), axis=-1)
    # Metres per 0.4 s frame: brisk walkers (90th percentile) cover 0.4-1.2 m (1-3 m/s), nobody runs 5 m/s.
    assert 0.4 < np.percentile(steps, 90) < 1.2 and steps.max() < 2.0


def test_eth_ucy_leave_one_scene_out():
    train = load_split("eth", "train")
    assert "biwi_eth_train" not in train.counts() and "biwi_hotel_train" in train.counts()
    val = load_split("univ", "val")
    assert not {"students001_val", "students003_val"} & set(val.counts())
    assert set(SCENES) == {"eth", "hotel", "univ", "zara1", "zara2"}


def test_eth_ucy_windows_and_padding():
    rows = np.array(
        [[f, a, f * 0.5 + a, a * 1.0] for f in range(25) for a in (1, 2)] + [[f, 3, 50.0, 0.0] for f in range(25)]
    )
    samples = make_windows(rows, radius=5.0)
    # 6 window starts (0..5) x 3 complete agents; agent 3 is 50 m away and has no neighbours.
    assert len(samples) == 18
    assert sorted(s.shape[0] for s in samples[:3]) == [1, 2, 2]
    batch = pad_collate(
        [PedestrianWindows(type("W", (), {"trajectories": samples, "__len__": lambda s: 18})())[i] for i in range(3)]
    )
    assert batch["past"].shape == (3, 2, 8, 2) and batch["eval_mask"].sum() == 3


def test_frame_samples_hold_each_window_agent_once():
    rows = np.array(
        [[f, a, f * 0.5 + a, a * 1.0] for f in range(25) for a in (1, 2)]
        + [[f, 3, 50.0, 0.0] for f in range(25)]
        + [[f, 4, 0.0, 0.0] for f in range(3, 25)]  # complete from start 3 on
    )
    frames, windows = make_frame_samples(rows), make_windows(rows, radius=5.0)
    # Starts 0..5: 3 agents complete at starts 0-2, 4 at starts 3-5; every complete agent is the focal agent
    # of one window, and in one frame sample.
    assert [len(f) for f in frames] == [3, 3, 3, 4, 4, 4]
    assert sum(len(f) for f in frames) == len(windows)
    for start, frame in enumerate(frames):
        for path in frame:
            assert any(np.array_equal(path, w[0]) for w in windows[3 * min(start, 3) :])
    # Per frame, the split loader gives as many agents as there are windows.
    train_windows, train_frames = load_split("eth", "train"), load_split("eth", "train", per_frame=True)
    assert len(train_frames) < len(train_windows) // 5
    assert sum(len(t) for t in train_frames.trajectories) == len(train_windows)
    items = PedestrianWindows(train_frames, focal_only=False)
    assert int(items[0]["eval_mask"].sum()) == len(train_frames.trajectories[0])


def test_size_batches_group_similar_sizes_and_cover_every_sample():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 60, 1000).tolist()
    evaluation = list(SizeBatches(sizes, 64, shuffle=False))
    assert sorted(i for b in evaluation for i in b) == list(range(1000))
    training = SizeBatches(sizes, 50, seed=1, pool=5)
    epoch0 = list(training)
    assert all(len(b) == 50 for b in epoch0) and len({i for b in epoch0 for i in b}) == 50 * len(epoch0)
    assert len(epoch0) == len(training) == 20
    training.set_epoch(1)
    assert list(training) != epoch0
    # Padding: within a batch the sizes span a narrow range, unlike a random batch's.
    padded = sum(max(sizes[i] for i in b) * len(b) for b in epoch0)
    random_batches = rng.permutation(1000).reshape(20, 50)
    assert padded < 0.7 * sum(max(sizes[i] for i in b) * len(b) for b in random_batches)
    # Two processes split the batches of an epoch, disjoint and the same number each.
    ranks = [list(SizeBatches(sizes, 30, seed=1, rank=r, world=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) and not {i for b in ranks[0] for i in b} & {i for b in ranks[1] for i in b}
    # The length is counted without drawing an epoch, and agrees with one, also with a partial last pool.
    for kwargs in (dict(rank=1, world=2), dict(drop_last=False), dict(shuffle=False)):
        batches = SizeBatches(sizes[:997], 30, seed=1, pool=7, **kwargs)
        assert len(batches) == len(list(batches))
    assert agent_counts(PedestrianWindows(load_split("hotel", "test")))[:3] == [
        len(t) for t in load_split("hotel", "test").trajectories[:3]
    ]


def test_malformed_file_names_file_and_line(tmp_path):
    bad = tmp_path / "scene.txt"
    good = " ".join(["1.0", "2.0", "Pedestrian"] + ["-1.0"] * 10 + ["3.0", "-1.0", "4.0", "-1.0"])
    bad.write_text(good + "\n" + good.replace("3.0", "x", 1) + "\n")
    with pytest.raises(ValueError, match=r"scene.txt:2: non-numeric"):
        load_scene_file(bad)
    bad.write_text("1 2 3\n")
    with pytest.raises(ValueError, match=r"scene.txt:1: expected at least 16 columns"):
        load_scene_file(bad)
    with pytest.raises(ValueError, match="unknown ETH/UCY scene"):
        load_split("paris", "test")


def test_eth_ucy_reads_plain_and_compressed_folders_alike(tmp_path):
    # A user's uncompressed copy of the shipped (gzip) layout gives the same samples.
    for split in ("test", "val"):
        (tmp_path / split).mkdir()
        for f in scene_files(default_root() / split):
            (tmp_path / split / f"{file_stem(f)}.txt").write_text(gzip.open(f, "rt").read())
    for scene, split in (("hotel", "test"), ("eth", "val")):
        plain, shipped = load_split(scene, split, root=tmp_path), load_split(scene, split)
        assert plain.sources == shipped.sources and len(plain) > 0
        assert all(np.array_equal(a, b) for a, b in zip(plain.trajectories, shipped.trajectories, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("scene", ["univ", "zara2"])
def test_eth_ucy_test_counts_of_the_large_scenes(scene):
    assert len(load_split(scene, "test")) == DOCUMENTED_TEST_COUNTS[scene]


def write_nri_folder(folder, suffix="charged5_initvel1", systems=4, frames=30, particles=5, seed=0):
    """Small files in the NRI/EGNN layout (positions stored [S, T, 3, N]); returns positions [S, T, N, 3]."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    positions = {}
    for split, token in (("train", "train"), ("val", "valid"), ("test", "test")):
        loc = rng.normal(size=(systems, frames, particles, 3)).astype(np.float32)
        np.save(folder / f"loc_{token}_{suffix}.npy", loc.transpose(0, 1, 3, 2))
        np.save(folder / f"vel_{token}_{suffix}.npy", np.zeros((systems, frames, 3, particles), np.float32))
        np.save(folder / f"charges_{token}_{suffix}.npy", rng.choice([-1.0, 1.0], size=(systems, particles, 1)))
        positions[split] = loc
    return positions


def test_nri_layout_is_detected_and_read_in_our_axis_order(tmp_path):
    positions = write_nri_folder(tmp_path / "charged")
    splits = find_nri_splits(tmp_path / "charged")
    assert set(splits) == {"train", "val", "test"} and splits["val"].name == "loc_valid_charged5_initvel1.npy"
    windows = NBodyWindows(splits["test"], past=10, future=20)
    assert len(windows) == 4
    item = windows[2]
    expected = torch.from_numpy(positions["test"][2].transpose(1, 0, 2))  # [N, T, 3]
    assert torch.equal(item["past"], expected[:, :10]) and torch.equal(item["future"], expected[:, 10:30])
    assert find_nri_splits(tmp_path) is None  # no loc_*.npy files: not this layout


def test_nri_layout_errors_name_the_problem(tmp_path):
    write_nri_folder(tmp_path / "mixed")
    write_nri_folder(tmp_path / "mixed", suffix="springs5")
    with pytest.raises(ValueError, match="several systems"):
        find_nri_splits(tmp_path / "mixed")
    write_nri_folder(tmp_path / "partial")
    (tmp_path / "partial" / "loc_valid_charged5_initvel1.npy").unlink()
    with pytest.raises(ValueError, match="without loc_valid_charged5_initvel1.npy"):
        find_nri_splits(tmp_path / "partial")
    np.save(tmp_path / "loc_test_bad.npy", np.zeros((2, 30, 5)))
    with pytest.raises(ValueError, match=r"shape \[S, T, D, N\]"):
        NBodyWindows(tmp_path / "loc_test_bad.npy")
