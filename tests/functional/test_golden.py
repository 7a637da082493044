"""The golden sweep's exports against those recorded on another machine, under this machine's best
kernels and under torch's AVX2 ones (``ATEN_CPU_CAPABILITY=avx2``), in both execution modes (fused
packs and single runs). Where the best kernels are AVX2 already (this 2-core machine), the
forced-AVX2 variant would repeat the same run and is skipped, saying so.

Floats are compared with the portable tolerance of ``tests/support/golden.py`` (relative 2e-3 plus
absolute 2e-4, measured: AVX-512 and AVX2 kernels differ in the last digits and 4 epochs of
training amplify that); ids, statuses, steps, shapes and counts exactly; ranks exactly unless a
singular value lies within the tolerance of eps. A refactor that must change no number is checked
bitwise on one machine (two runs in one test), not against these files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import golden

KERNELS = {"best-kernels": None, "avx2-kernels": "avx2"}


@pytest.mark.slow
@pytest.mark.parametrize("kernels", sorted(KERNELS))
@pytest.mark.parametrize("mode", sorted(golden.MODES))
def test_exports_match_the_recorded_ones_within_the_portable_tolerance(
    tmp_path: Path, mode: str, kernels: str
) -> None:
    capability = KERNELS[kernels]
    if capability is not None and _best_kernels() == capability.upper():
        pytest.skip(f"this machine's best kernels are already {capability.upper()}: the same run twice")
    got = golden.exports(tmp_path, mode, env=golden.kernels_env(capability))
    golden.assert_portable(got, golden.recorded(mode), f"{mode} ({kernels})")


def _best_kernels() -> str:
    """The kernels torch picks here when nothing is forced (AVX512, AVX2, ...)."""
    import torch

    if "ATEN_CPU_CAPABILITY" in os.environ:
        return "forced"
    return torch.backends.cpu.get_cpu_capability()


def test_the_portable_comparison_catches_a_changed_number() -> None:
    """The tolerance is not so wide that a real change passes: a loss 1% off, a step, an id, a rank
    away from eps, a missing row each fail; a last-digit difference passes."""
    expected = golden.recorded("single")
    golden.assert_portable(expected, expected, "itself")

    def changed(kind: str, old: str, new: str) -> dict[str, str]:
        assert old in expected[kind]
        return expected | {kind: expected[kind].replace(old, new, 1)}

    last_digit = changed("summary", "0.6697197238770142", "0.6697197238770191")
    golden.assert_portable(last_digit, expected, "last digit")
    golden.assert_portable(changed("summary", "0.6697197238770142", "0.66972"), expected, "1e-6")
    for kind, old, new in [
        ("summary", "0.6697197238770142", "0.6764169211157843"),  # +1% loss
        ("summary", ",done,", ",failed,"),
        ("metrics", "071e274f30ed,0,0.0,test_acc", "071e274f30ed,1,0.0,test_acc"),
        ("spectra", ",fc1,32,64,1,32,", ",fc1,32,64,1,31,"),  # rank 32, all values far from eps
    ]:
        with pytest.raises(AssertionError, match="difference"):
            golden.assert_portable(changed(kind, old, new), expected, f"{old} -> {new}")
    short = expected | {"metrics": "\n".join(expected["metrics"].splitlines()[:-1]) + "\n"}
    with pytest.raises(AssertionError, match="rows missing"):
        golden.assert_portable(short, expected, "a row missing")


def test_a_rank_may_move_only_by_the_values_that_sit_on_eps() -> None:
    header = (
        "run_id,step,epoch,layer,d_out,d_in,m,rank,rank_eps,"
        "stable_rank,effective_rank,spectral_norm,fro_norm,bound,index,sigma"
    )
    head = "r,0,0.0,fc1,2,2,1,{rank},0.001,1.0,1.0,1.0,1.0,inf"
    rows = [head + ",0,0.9", head + ",1,{s}"]

    def spectra(rank: int, sigma: str) -> dict[str, str]:
        text = "\n".join([header, *(row.format(rank=rank, s=sigma) for row in rows)]) + "\n"
        return {"summary": "run_id\nr\n", "metrics": "run_id,step,name,value\n", "spectra": text}

    golden.assert_portable(spectra(1, "0.00101"), spectra(2, "0.00101"), "sigma on eps")
    with pytest.raises(AssertionError, match="rank"):
        golden.assert_portable(spectra(1, "0.005"), spectra(2, "0.005"), "sigma far from eps")
