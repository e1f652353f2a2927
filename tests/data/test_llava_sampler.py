"""The modality-grouped, length-balanced sampler: fixed by the seed, all-image or all-text global batches,
balanced across ranks, and an exact mid-epoch resume."""

from __future__ import annotations

import random

import pytest

from ablate.data.llava import ModalityLengthSampler

N = 203
_rng = random.Random(0)
LENGTHS = [_rng.randint(5, 300) for _ in range(N)]
MULTIMODAL = [_rng.random() < 0.8 for _ in range(N)]


def make(seed: int = 7, rank: int = 0, replicas: int = 1, batch: int = 4) -> ModalityLengthSampler:
    return ModalityLengthSampler(LENGTHS, MULTIMODAL, per_device_batch=batch, seed=seed, num_replicas=replicas,
                                 rank=rank)


def test_order_is_fixed_by_seed_and_epoch() -> None:
    a, b, c = make(), make(), make(seed=8)
    assert list(a) == list(b)
    assert list(make()) != list(c)
    assert a.epoch == 1 and a.order(0) != a.order(1)
    assert sorted(set(make().order())) == list(range(N))  # every example, each epoch


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_global_batches_are_single_modality_and_length_balanced(replicas: int) -> None:
    s = make(replicas=replicas)
    batches = s.global_batches()
    assert len(batches) == s.batches_per_epoch
    for shares in batches:
        flat = [i for share in shares for i in share]
        assert len({MULTIMODAL[i] for i in flat}) == 1
        assert all(len(share) == 4 for share in shares)
        totals = [sum(LENGTHS[i] for i in share) for share in shares]
        assert max(totals) - min(totals) <= max(LENGTHS[i] for i in flat)
    # ranks get disjoint parts of each global batch and all their orders have the same length
    orders = [make(rank=r, replicas=replicas).order() for r in range(replicas)]
    assert len({len(o) for o in orders}) == 1 and len(orders[0]) == len(s)
    for k, shares in enumerate(batches):
        assert [o[4 * k:4 * (k + 1)] for o in orders] == shares
    everything = [i for o in orders for i in o]
    assert set(everything) == set(range(N))
    # repeats only pad each modality's last global batch
    assert len(everything) - N < 2 * 4 * replicas


@pytest.mark.parametrize(("rank", "replicas", "consumed"), [(0, 1, 0), (0, 1, 37), (1, 2, 50), (0, 2, 51)])
def test_mid_epoch_resume_yields_exactly_the_remaining_order(rank: int, replicas: int, consumed: int) -> None:
    first = make(rank=rank, replicas=replicas)
    first.set_epoch(2)
    full = first.order()
    it = iter(first)
    seen = [next(it) for _ in range(consumed)]
    state = first.state_dict()
    assert state == {"epoch": 2, "position": consumed, "seed": 7}
    resumed = make(rank=rank, replicas=replicas)
    resumed.load_state_dict(state)
    assert seen + list(resumed) == full
    assert resumed.epoch == 3 and resumed.position == 0  # the next epoch starts fresh


def test_state_checks() -> None:
    s = make()
    with pytest.raises(ValueError, match="seed 9 differs"):
        s.load_state_dict({"epoch": 0, "position": 0, "seed": 9})
    with pytest.raises(ValueError, match="position 100000 outside"):
        s.load_state_dict({"epoch": 0, "position": 100000, "seed": 7})
    assert s.state_dict(consumed=12)["position"] == 12
    with pytest.raises(ValueError, match="rank 2 outside"):
        make(rank=2, replicas=2)
