"""Every benchmark loader on fixtures in the real release formats: ids, prompts, gold answers, subsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.config import ConfigError
from ablate.eval.benchmarks import get_benchmark, list_benchmarks
from ablate.eval.benchmarks.prompts import SHORT_ANSWER
from ablate.registry import BENCHMARKS


def load(bench_root, benchmark_id: str, **kw):
    root, _ = bench_root
    return get_benchmark(benchmark_id, root, **kw).load()


def test_registry_has_prismatic_benchmarks() -> None:
    assert list_benchmarks() == ["vqav2", "gqa", "vizwiz", "textvqa", "textvqa-ocr", "refcoco", "refcoco-plus",
                                 "refcocog", "ocid-ref", "vsr", "pope", "tallyqa", "ai2d", "chair", "lrv-neg"]
    with pytest.raises(ConfigError, match="^eval.benchmarks: invalid value 'mmmu'; allowed: vqav2, gqa,"):
        get_benchmark("mmmu", ".")
    for benchmark_id in list_benchmarks():  # the registry's ID is the class's own
        assert BENCHMARKS.get(benchmark_id).id == benchmark_id


@pytest.mark.parametrize("benchmark_id", list_benchmarks())
def test_loader_ids_images_and_prompts(bench_root, benchmark_id: str) -> None:
    _, expected = bench_root
    examples = load(bench_root, benchmark_id)
    ids = [e.example_id for e in examples]
    assert len(ids) == len(set(ids)) == len(expected[benchmark_id])
    for got, want in zip(ids, expected[benchmark_id], strict=True):
        assert got.startswith(want) if benchmark_id == "vsr" else got == want
    for e in examples:
        assert Path(e.image).is_file(), e.image
        assert e.prompt.startswith("\n")  # Prismatic's message layout


def test_vqav2_gold_and_prompt(bench_root) -> None:
    ex = {e.example_id: e for e in load(bench_root, "vqav2")}
    assert ex["2001"].gold == ["2", "2", "two", "two", "3", "3", "3", "3", "3", "3"]
    assert ex["2001"].meta == {"answer_type": "number", "question_type": "how many"}
    assert ex["2001"].image.name == "COCO_val2014_000000000002.jpg"
    assert ex["1000"].prompt == "\nWhat color is the square?" + SHORT_ANSWER


def test_gqa_skips_unbalanced_and_marks_open(bench_root) -> None:
    ex = {e.example_id: e for e in load(bench_root, "gqa")}
    assert set(ex) == {"201307251", "20000001"}
    assert ex["20000001"].meta["kind"] == "open" and ex["201307251"].meta["kind"] == "binary"
    assert ex["20000001"].gold == "cup" and ex["20000001"].image.name == "n161313.jpg"


def test_vizwiz_prompt_has_unanswerable_trigger(bench_root) -> None:
    ex = load(bench_root, "vizwiz")[0]
    assert ex.prompt == ("\nWhat is this?\nWhen the provided information is insufficient, respond with "
                         "'Unanswerable'.\nAnswer the question using a single word or phrase.")
    assert ex.meta["answerable"] == 0 and ex.gold == ["unanswerable"] * 10


def test_textvqa_with_and_without_ocr_tokens(bench_root) -> None:
    plain = {e.example_id: e for e in load(bench_root, "textvqa")}
    ocr = {e.example_id: e for e in load(bench_root, "textvqa-ocr")}
    assert plain["34602"].prompt == "\nwhat brand is this?" + SHORT_ANSWER
    # joined by question_id (the OCR file is in another order); the file's own short-answer line is dropped, so
    # the instruction appears exactly once
    assert ocr["34602"].prompt == "\nwhat brand is this?\nReference OCR token: NIKON" + SHORT_ANSWER
    assert ocr["34603"].gold == plain["34603"].gold == ["12"] * 10


@pytest.mark.parametrize("benchmark_id", ["refcoco", "refcoco-plus", "refcocog"])
def test_refcoco_family_boxes_normalized_xyxy(bench_root, benchmark_id: str) -> None:
    ex = {e.example_id: e for e in load(bench_root, benchmark_id)}
    assert set(ex) == {"0", "1", "2"}  # the testA ref is not in val
    # bbox [8, 4, 16, 16] on a 64x32 image -> xyxy [8, 4, 24, 20] / (64, 32, 64, 32), rounded to 2 dp
    assert ex["0"].gold == ex["1"].gold == [0.12, 0.12, 0.38, 0.62]
    assert ex["2"].gold == [0.62, 0.25, 0.94, 0.88]
    assert ex["0"].prompt == ('\nPlease provide the bounding box coordinate of the region this sentence '
                              'describes: "left man"')


def test_ocid_ref_boxes_and_clutter(bench_root) -> None:
    ex = {e.example_id: e for e in load(bench_root, "ocid-ref")}
    assert ex["23"].gold == [0.06, 0.25, 0.31, 0.75] and ex["23"].meta["clutter"] == "minimum"
    assert ex["7"].meta["clutter"] == "maximum"


def test_closed_set_options(bench_root) -> None:
    pope = load(bench_root, "pope")
    assert pope[0].options == ["Yes", "No"] and pope[0].gold == "Yes" and pope[1].gold == "No"
    assert pope[0].prompt == "\nIs there a snowboard in the image?" + SHORT_ANSWER
    vsr = load(bench_root, "vsr")
    assert [e.gold for e in vsr] == ["True", "False"] and vsr[0].options == ["True", "False"]
    assert vsr[0].prompt.endswith('The cat is behind the laptop.\nRespond with "True" or "False" directly.')
    tally = {e.example_id: e for e in load(bench_root, "tallyqa")}
    assert tally["7"].options == [chr(ord("A") + i) for i in range(16)]
    assert tally["7"].gold == "C" and tally["9"].gold == "A"
    assert tally["7"].meta["kind"] == "simple" and tally["9"].meta["kind"] == "complex"
    assert "\nC. 2\n" in tally["7"].prompt
    assert tally["7"].prompt.endswith("\nAnswer with the option's letter from the given choices directly.")
    ai2d = {e.example_id: e for e in load(bench_root, "ai2d")}
    assert ai2d["0.png-0"].gold == "B" and ai2d["12.png-0"].gold == "D"
    assert ai2d["12.png-0"].meta["split"] == "test" and ai2d["0.png-1"].meta["split"] == "val"
    assert ai2d["0.png-0"].prompt == ("\nWhich is a producer?\nA. fox\nB. grass\nC. hawk\nD. snake"
                                      "\nAnswer with the option's letter from the given choices directly.")


def test_vsr_ids_are_stable_caption_digests(bench_root) -> None:
    a, b = load(bench_root, "vsr"), load(bench_root, "vsr")
    assert [e.example_id for e in a] == [e.example_id for e in b]
    assert a[0].example_id != a[1].example_id  # same image, different captions


def test_fixed_seed_subsets(bench_root) -> None:
    root, _ = bench_root
    bench = get_benchmark("pope", root)
    full = [e.example_id for e in bench.load()]
    sub = [e.example_id for e in bench.load(limit=3, seed=1)]
    assert sub == [e.example_id for e in bench.load(limit=3, seed=1)]  # same seed -> same subset
    assert len(sub) == 3 and {i.split("-")[0] for i in sub} == {"adversarial", "popular", "random"}
    assert sub == [i for i in full if i in sub]  # file order kept
    seeds = {tuple(e.example_id for e in bench.load(limit=3, seed=s)) for s in range(8)}
    assert len(seeds) > 1  # the seed matters
    assert [e.example_id for e in bench.load(limit=100)] == full
