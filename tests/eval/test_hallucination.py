"""CHAIR against hand computations, the COCO-format CHAIR benchmark, LRV negative instructions, verbosity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from benchmark_fixture_files import write_coco, write_lrv

from ablate.eval.benchmarks import BenchmarkFormatError, get_benchmark
from ablate.eval.chair import caption_objects, chair_aggregate, chair_record, coco_vocabulary, node_words
from ablate.eval.verbosity import length_limit, verbosity_fields, verbosity_metrics

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# Hand-checked captions; the objects each mentions, worked out by hand from data/synonyms.txt:
HAND = [
    # man -> person, frisbee, dog: all present
    ("A man throws a frisbee to his dog on the grass.", {"person", "dog", "frisbee"},
     ["person", "frisbee", "dog"], []),
    # people -> person (irregular plural), puppy -> dog, ball -> sports ball, bench: ball and bench absent
    ("Two people and a puppy play with a ball near a bench.", {"person", "dog", "frisbee"},
     ["person", "dog", "sports ball", "bench"], ["sports ball", "bench"]),
    # "baby bird" -> bird, "toilet seat" -> toilet (not chair), "wine glasses" -> wine glass (absent)
    ("A baby bird sits on a toilet seat next to the wine glasses.", {"bird", "toilet"},
     ["bird", "toilet", "wine glass"], ["wine glass"]),
    # "motor bike" merges into one word, and synonyms.txt's entry is " motor bike" (two spaces before it in
    # the file, split on ", "): as in the reference, it matches nothing
    ("A motor bike parked on the street.", {"motorcycle"}, [], []),
]


@pytest.mark.parametrize(("caption", "gt", "mentioned", "hallucinated"), HAND)
def test_chair_per_caption_equals_hand_computation(caption, gt, mentioned, hallucinated) -> None:
    rec = chair_record(caption, gt)
    assert rec["mentioned_objects"] == mentioned
    assert rec["hallucinated_objects"] == hallucinated
    assert rec["chair_i"] == (len(hallucinated) / len(mentioned) if mentioned else 0.0)
    assert rec["chair_s"] == float(bool(hallucinated))


def test_chair_aggregate_equals_hand_computation() -> None:
    recs = [chair_record(c, gt) for c, gt, _, _ in HAND]
    assert [r["chair_i"] for r in recs] == [0.0, 0.5, pytest.approx(1 / 3), 0.0]
    agg = chair_aggregate(recs)
    # CHAIR_i = hallucinated / mentioned over all captions = (0 + 2 + 1 + 0) / (3 + 4 + 3 + 0) = 0.3
    assert agg["chair_i"] == pytest.approx(0.3)
    # CHAIR_s = captions with a hallucination / captions = 2 / 4
    assert agg["chair_s"] == 0.5
    assert agg["object_mentions_per_caption"] == 2.5


def test_vocabulary_is_the_published_list() -> None:
    vocab = coco_vocabulary()
    assert len(vocab.nodes) == 80  # one line per COCO category
    assert vocab.node_of["kitten"] == "cat" and vocab.node_of["sofa"] == "couch" and vocab.node_of["tv"] == "tv"
    assert [n for _, n in caption_objects("Knives, mice and oxen.")] == ["knife", "mouse", "cow"]
    with pytest.raises(ValueError, match="object 'unicorn' is not in the CHAIR synonym lists"):
        node_words(["unicorn"], where="x.json")


def test_chair_benchmark_reads_coco_and_scores_per_caption(tmp_path: Path) -> None:
    write_coco(tmp_path)
    bench = get_benchmark("chair", tmp_path)
    examples = bench.load()
    assert [e.example_id for e in examples] == ["2239", "2302", "3001"]
    assert [e.gold for e in examples] == [["dog", "frisbee", "person"], ["bench"], ["kite", "person"]]
    assert examples[0].prompt == "\nPlease describe this image in detail."
    outputs = ["A man and two dogs playing frisbee.", "A cat sleeping on a bench next to a sofa.",
               "A person with a kite."]
    records = [bench.score(e, o) for e, o in zip(examples, outputs, strict=True)]
    assert [r["score"] for r in records] == [1.0, 0.0, 1.0]
    assert records[1]["hallucinated_objects"] == ["cat", "couch"] and records[1]["chair_i"] == 2 / 3
    metrics = bench.aggregate(records)
    # mentions 3 + 3 + 2 = 8, hallucinated 0 + 2 + 0 -> CHAIR_i 0.25; CHAIR_s 1/3
    assert metrics["chair_i"] == 0.25 and metrics["chair_s"] == pytest.approx(1 / 3)
    assert metrics["accuracy"] == pytest.approx(2 / 3)  # = 1 - CHAIR_s


def test_chair_benchmark_without_captions_and_bad_files(tmp_path: Path) -> None:
    write_coco(tmp_path, captions=False)
    bench = get_benchmark("chair", tmp_path)
    assert bench.load()[2].gold == ["person"]  # the kite came from the human caption only
    (tmp_path / "chair/image_ids.txt").write_text("2239\nabc\n")
    with pytest.raises(BenchmarkFormatError, match=r"image_ids.txt: line 2: expected one integer image id, got 'abc'"):
        bench.load()
    (tmp_path / "chair/image_ids.txt").unlink()  # no list of its own: the packaged CHAIR-500 ids, in order
    with pytest.raises(BenchmarkFormatError, match=r"chair_500_image_ids.txt: image id 3501: expected an image"):
        bench.load()
    (tmp_path / "chair/image_ids.txt").write_text("2239\n42\n")
    with pytest.raises(BenchmarkFormatError, match=r"image id 42: expected an image of instances_val2014.json"):
        bench.load()


def test_lrv_negative_instructions_scored_by_premise(tmp_path: Path) -> None:
    rows = json.loads((FIXTURES / "lrv/instruction_readme_line.json").read_text())
    rows += [{"image_id": "2412946", "question": "Is the woman surfing on a green surfboard?",
              "answer": "Yes, she is surfing on a green surfboard.", "task": "positive"},
             {"image_id": "2341310", "question": "Can you spot the zebra standing behind the boys?",
              "answer": "No, there is no zebra behind the boys.", "task": "negative"}]
    write_lrv(tmp_path, rows)
    bench = get_benchmark("lrv-neg", tmp_path)
    examples = bench.load()
    assert [e.gold for e in examples] == ["no", "yes", "no"]  # from LRV's gold answers by POPE's rule
    assert examples[0].example_id == "2392588-0" and examples[0].meta["task"] == "negative"
    outputs = ["Yes, the blue teapot is on the stove.",  # accepts the false premise: wrong
               "The woman rides a green surfboard.",  # accepts a true premise: right
               "There is no zebra in the image."]  # rejects the false premise: right
    records = [bench.score(e, o) for e, o in zip(examples, outputs, strict=True)]
    assert [r["score"] for r in records] == [0.0, 1.0, 1.0]
    m = bench.aggregate(records)
    assert m["accuracy"] == pytest.approx(2 / 3) and m["accuracy_negative"] == 0.5 and m["accuracy_positive"] == 1.0
    assert m["accuracy_task_negative"] == 0.5 and m["yes_ratio"] == pytest.approx(2 / 3)


def test_lrv_evaluation_set_without_answers_is_refused(tmp_path: Path) -> None:
    (tmp_path / "lrv").mkdir()
    shutil.copy(FIXTURES / "lrv/evaluation_set_head.json", tmp_path / "lrv/negative_eval.json")
    with pytest.raises(BenchmarkFormatError, match=r"negative_eval.json: record 0: expected key 'answer' "
                                                   r"\(LRV's evaluation_set.json has no answers"):
        get_benchmark("lrv-neg", tmp_path).load()


class WordTokenizer:
    """A real tokenizer (tokenizers' WordLevel over whitespace) in transformers' call convention."""

    def __init__(self) -> None:
        from tokenizers import Tokenizer, models, pre_tokenizers

        self.tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
        self.tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": self.tok.encode(text, add_special_tokens=add_special_tokens).ids}


def test_verbosity_fields_and_over_length() -> None:
    short = "\nIs there a red circle in the image?\nAnswer the question using a single word or phrase."
    assert length_limit(short) == 3 and length_limit("\nPlease describe this image in detail.") is None
    assert length_limit("\nA. 1\nB. 2\nAnswer with the option's letter from the given choices directly.") == 1
    tok = WordTokenizer()
    long = verbosity_fields(short, "Yes, there is a red circle.", tok)
    assert long == {"answer_words": 6, "answer_tokens": 6, "length_limit": 3, "over_length": 1.0}
    brief = verbosity_fields(short, "Yes", tok)
    assert brief["over_length"] == 0.0
    free = verbosity_fields("\nPlease describe this image in detail.", "A dog.", None)
    assert free == {"answer_words": 2}
    m = verbosity_metrics([long, brief, free])
    assert m == {"words_per_answer": 3.0, "tokens_per_answer": 3.5, "over_length_rate": 0.5}
