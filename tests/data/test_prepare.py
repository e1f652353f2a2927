"""``ablate data prepare``: from the files as the field distributes them (real upstream lines, tests/fixtures) to
ablate's layout -- found by name anywhere under --from, images linked, manifest, idempotent, atomic."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from ablate.cli import main
from ablate.data import prepare
from ablate.data.check import check_root
from ablate.data.llava import BadDataError, read_records
from ablate.eval.benchmarks import BENCHMARKS, BenchmarkFormatError, get_benchmark
from ablate.eval.benchmarks.prompts import SHORT_ANSWER

FIX = Path(__file__).parent.parent / "fixtures"
POPE = FIX / "pope" / "e3e3926"
OCR = FIX / "llava" / "eval" / "textvqa" / "llava_textvqa_val_v051_ocr.jsonl"


def jpeg(path: Path, color: tuple[int, int, int] = (90, 30, 200)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), color).save(path, "JPEG")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (links by target), to assert that nothing changed."""
    out = {}
    for top, dirs, files in os.walk(root):
        for n in dirs + files:
            p = Path(top) / n
            out[str(p.relative_to(root))] = os.readlink(p) if p.is_symlink() else ("dir" if p.is_dir() else sha(p))
    return out


def pope_download(base: Path) -> Path:
    """The POPE download as a user unpacks it: the repo's output/coco files, COCO's val2014/ elsewhere, and a
    decoy val2014/ (another dataset's) that lacks POPE's images."""
    shutil.copytree(POPE, base / "POPE-main" / "output" / "coco")
    for split in ("adversarial", "popular", "random"):
        for line in (POPE / f"coco_pope_{split}.json").read_text().splitlines():
            jpeg(base / "coco" / "images" / "val2014" / json.loads(line)["image"])
    jpeg(base / "aaa-other" / "val2014" / "unrelated.jpg")
    return base


def test_list_names_every_benchmark_family_and_training_source(capsys) -> None:
    families = {cls.layout.name for cls in BENCHMARKS.values()}
    assert families == {"vqav2", "gqa", "vizwiz", "textvqa", "refcoco", "refcoco-plus", "refcocog", "ocid-ref", "vsr",
                        "pope", "tallyqa", "ai2d",  # Prismatic's 12 benchmarks (textvqa serves both variants)
                        "chair", "lrv-neg"}  # hallucination benchmarks (issue 23)
    assert set(prepare.names()) == families | {"llava-laion-cc-sbu-558k", "llava-v15-665k", "lvis-instruct4v-220k",
                                               "llava-v15-language-only", "llava-v15-stripped625k", "lrv-instruct"}
    assert main(["data", "prepare", "--list"]) == 0
    out = capsys.readouterr().out
    for upstream in ("coco_pope_adversarial.json", "llava_textvqa_val_v051_ocr.jsonl", "refcocog/refs(umd).p",
                     "ai2d_test_ids.csv", "blip_laion_cc_sbu_558k.json", "filter_cap_more1.json", "val_expressions.json",
                     "instances_val2014.json", "negative_eval.json"):
        assert upstream in out, upstream


def test_pope_from_the_download_folder(tmp_path: Path, capsys) -> None:
    src = pope_download(tmp_path / "downloads")
    root = tmp_path / "data" / "eval"
    assert main(["data", "prepare", "pope", "--from", str(src), "--root", str(root)]) == 0
    assert f"pope: prepared under {root} (72 pope examples, 5 images)" in capsys.readouterr().out
    for split in ("adversarial", "popular", "random"):
        assert (root / f"pope/coco/coco_pope_{split}.json").read_bytes() == (POPE / f"coco_pope_{split}.json").read_bytes()
    link = root / "pope" / "val2014"
    assert link.is_symlink() and Path(os.readlink(link)) == (src / "coco/images/val2014").resolve()  # not the decoy
    assert not any(p.is_file() and not p.is_symlink() for p in link.parent.rglob("*.jpg"))  # nothing copied
    manifest = json.loads((root / "manifests" / "pope.json").read_text())
    assert manifest["version"] == "1" and manifest["counts"] == {"pope examples": 72, "images": 5}
    assert {Path(s["path"]).name: s["sha256"] for s in manifest["sources"]} == {
        f"coco_pope_{s}.json": sha(POPE / f"coco_pope_{s}.json") for s in ("adversarial", "popular", "random")}
    assert manifest["links"] == {"pope/val2014": str((src / "coco/images/val2014").resolve())}
    bench = get_benchmark("pope", root)
    assert len(bench.load()) == 72 and check_root(root).problems == []
    assert not any(p.name.startswith(".prepare-") for p in root.iterdir())

    # idempotent: unchanged sources -> nothing rewritten; a changed source -> rebuilt
    before = (root / "manifests/pope.json").stat().st_mtime_ns
    assert main(["data", "prepare", "pope", "--from", str(src), "--root", str(root)]) == 0
    assert "pope: up to date" in capsys.readouterr().out
    assert (root / "manifests/pope.json").stat().st_mtime_ns == before
    random_file = src / "POPE-main/output/coco/coco_pope_random.json"
    random_file.write_text("\n".join(random_file.read_text().splitlines()[:10]) + "\n")
    assert main(["data", "prepare", "pope", "--from", str(src), "--root", str(root)]) == 0
    assert "pope: prepared" in capsys.readouterr().out and len(get_benchmark("pope", root).load()) == 58


def test_a_missing_or_malformed_source_is_one_line_and_leaves_nothing(tmp_path: Path, capsys) -> None:
    src = pope_download(tmp_path / "downloads")
    root = tmp_path / "eval"
    (src / "POPE-main/output/coco/coco_pope_popular.json").unlink()
    assert main(["data", "prepare", "pope", "--from", str(src), "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: data prepare pope: {src}: no file named 'coco_pope_popular.json' found under it; "
                   "expected pope's coco_pope_popular.json (AoiDragon/POPE output/coco/coco_pope_*.json (LLaVA/"
                   "Prismatic pin e3e3926) and COCO val2014)\n")
    assert list(root.iterdir()) == []  # no temp folder, no half-written benchmark, no manifest

    shutil.copy(POPE / "coco_pope_popular.json", src / "POPE-main/output/coco/")
    assert main(["data", "prepare", "pope", "--from", str(src), "--root", str(root)]) == 0
    before = tree(root)
    bad = src / "POPE-main/output/coco/coco_pope_adversarial.json"
    lines = bad.read_text().splitlines()
    lines[4] = lines[4].replace('"label": "no"', '"label": "maybe"').replace('"label": "yes"', '"label": "maybe"')
    bad.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["data", "prepare", "pope", "--from", str(src), "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "coco_pope_adversarial.json: line 5: expected 'label' to be 'yes' or 'no', " \
                                    "got 'maybe'" in err
    assert tree(root) == before  # the earlier preparation is untouched


def textvqa_download(base: Path) -> Path:
    """LLaVA's OCR prompt file (real lines) + TextVQA_0.5.1_val.json for the same questions.  TextVQA's own
    file is a download from dl.fbaipublicfiles.com, not a git file: its records are BUILT FROM THE PUBLISHED
    SCHEMA ({question, image_id, answers: [10], question_id, ...}) for the images and questions of the OCR
    lines, in their order, lowercased as TextVQA writes questions."""
    (base / "eval" / "textvqa").mkdir(parents=True)
    shutil.copy(OCR, base / "eval" / "textvqa")
    data = []
    for i, line in enumerate(OCR.read_text().splitlines()):
        rec = json.loads(line)
        question = rec["text"].split("\n")[0].lower()
        data.append({"question": question, "image_id": rec["question_id"], "image_classes": ["Camera"],
                     "answers": [f"answer {i}"] * 10, "question_id": 34602 + i, "set_name": "val"})
        jpeg(base / "train_val_images" / "train_images" / rec["image"])
    (base / "TextVQA_0.5.1_val.json").write_text(json.dumps({"dataset_type": "val", "dataset_name": "textvqa",
                                                             "dataset_version": "0.5.1", "data": data}))
    return base


def test_textvqa_with_llavas_ocr_file_as_released(tmp_path: Path) -> None:
    src = textvqa_download(tmp_path / "dl")
    root = tmp_path / "eval"
    result = prepare.run(prepare.get("textvqa"), src, root)
    assert result.counts == {"textvqa examples": 30, "textvqa-ocr examples": 30, "images": 21}
    assert (root / "textvqa/textvqa_val_v051_ocr.jsonl").read_bytes() == OCR.read_bytes()  # placed as released
    plain = {e.example_id: e for e in get_benchmark("textvqa", root).load()}
    ocr = {e.example_id: e for e in get_benchmark("textvqa-ocr", root).load()}
    # lines 4 and 5 share question_id "831bcec304a17054" (the image): joined in order to TextVQA's ids 34605, 34606
    assert ocr["34605"].prompt.startswith("\nWhat brand liquor is on the right?\nReference OCR token: IGNET, N,")
    assert ocr["34606"].prompt.startswith("\nHow long has the drink on the right been aged?\nReference OCR token:")
    assert ocr["34606"].prompt.endswith("SCORLAND, AGED, 10" + SHORT_ANSWER)  # the instruction exactly once
    assert all(e.prompt.count(SHORT_ANSWER) == 1 for e in ocr.values())
    assert plain["34606"].prompt == "\nhow long has the drink on the right been aged?" + SHORT_ANSWER
    assert ocr["34606"].gold == plain["34606"].gold == ["answer 4"] * 10
    assert check_root(root).problems == []


def test_data_check_rejects_exactly_what_the_textvqa_loader_rejects(tmp_path: Path) -> None:
    src = textvqa_download(tmp_path / "dl")
    root = tmp_path / "eval"
    prepare.run(prepare.get("textvqa"), src, root)
    ocr_file = root / "textvqa/textvqa_val_v051_ocr.jsonl"
    lines = ocr_file.read_text().splitlines()
    lines[3], lines[4] = lines[4], lines[3]  # two questions of one image out of TextVQA's order
    ocr_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(BenchmarkFormatError) as loader:
        get_benchmark("textvqa-ocr", root).load()
    expected = (f"{ocr_file}: line 4 (question_id '831bcec304a17054'): expected the question 'what brand liquor is on "
                "the right?' (TextVQA question_id 34605), got 'how long has the drink on the right been aged?'")
    assert str(loader.value) == expected
    report = check_root(root)
    assert report.problems == [expected]  # the loader's own line: data check cannot pass it
    assert len(get_benchmark("textvqa", root).load()) == 30  # the plain variant does not read the OCR file


def test_vsr_zero_shot_split_is_chosen_over_the_random_split(tmp_path: Path) -> None:
    src = tmp_path / "vsr-download"
    shutil.copytree(FIX / "vsr" / "zeroshot", src / "splits" / "zeroshot")
    (src / "splits" / "random").mkdir()
    (src / "splits" / "random" / "test.jsonl").write_text((FIX / "vsr/zeroshot/test.jsonl").read_text()[:400])
    for line in (FIX / "vsr/zeroshot/test.jsonl").read_text().splitlines():
        jpeg(src / "images" / json.loads(line)["image"])
    result = prepare.run(prepare.get("vsr"), src, tmp_path / "eval")
    assert result.counts == {"vsr examples": 30, "images": 30}
    examples = get_benchmark("vsr", tmp_path / "eval").load()
    assert examples[0].example_id.startswith("000000017697-") and examples[0].gold == "True"
    assert examples[0].prompt == ('\nBased on the image, is this statement "True" or "False"? The car is behind the '
                                  'suitcase.\nRespond with "True" or "False" directly.')


def lrv_download(base: Path) -> Path:
    for name in ("filter_cap1.json", "filter_cap_more1.json", "chart_release_update.json"):
        (base / "lrv").mkdir(parents=True, exist_ok=True)
        shutil.copy(FIX / "lrv" / name, base / "lrv")
    for name in ("filter_cap1.json", "filter_cap_more1.json"):
        for rec in json.loads((FIX / "lrv" / name).read_text()):
            jpeg(base / "lrv-images" / "image" / f"{rec['image_id']}.jpg")
    (base / "charts" / "chart_image").mkdir(parents=True)
    for rec in json.loads((FIX / "lrv/chart_release_update.json").read_text()):
        Image.new("RGB", (10, 10)).save(base / "charts" / "chart_image" / rec["image_id"])
    return base


def test_lrv_raw_release_becomes_lrv_instruct_343k(tmp_path: Path) -> None:
    src = lrv_download(tmp_path / "dl")
    root = tmp_path / "data"
    result = prepare.run(prepare.get("lrv-instruct"), src, root)
    assert result.counts == {"filter_cap1.json": 4, "filter_cap_more1.json": 2, "chart_release_update.json": 2,
                             "records": 8}
    out = root / "download/llava-v1.5-instruct/lrv_instruct_343k.json"  # the file conf/data/llava-v15-lrv.yaml reads
    records = json.loads(out.read_text())
    assert records[0] == {"id": "2392588", "image": "lrv/lrv-vg/2392588.jpg", "conversations": [
        {"from": "human", "value": "<image>\nCan you see a blue teapot on the white electric stove in the kitchen?"},
        {"from": "gpt", "value": "There is no mention of a teapot on the white electric stove in the kitchen."}]}
    assert records[2]["conversations"][1]["value"] == "There is no zebra in the image."  # stripped, as Prismatic
    assert records[6] == {"id": "statista_12345", "image": "lrv/lrv-chart/statista_12345.png", "conversations": [
        {"from": "human", "value": "<image>\nWhich year had the highest revenue?"},
        {"from": "gpt", "value": "2019 had the highest revenue."}]}
    kept = read_records(out, out.parent, source="lrv-instruct-343k", on_bad_example="fail")
    assert len(kept) == 8 and all(r.image.is_file() for r in kept)


def test_lrv_raw_records_are_an_error_not_a_silent_skip(tmp_path: Path) -> None:
    src = lrv_download(tmp_path / "dl")
    with pytest.raises(BadDataError, match=r"filter_cap1\.json: record 0: LRV-Instruct's raw release format .* "
                                           r"`ablate data prepare lrv-instruct --from DIR`"):
        read_records(src / "lrv/filter_cap1.json", src, source="lrv", on_bad_example="skip")
    bad = json.loads((src / "lrv/filter_cap_more1.json").read_text())
    del bad[1]["answer"]
    (src / "lrv/filter_cap_more1.json").write_text(json.dumps(bad))
    with pytest.raises(prepare.PrepareError, match=r"filter_cap_more1\.json: record 1: expected 'answer' to be a "
                                                   r"string \(LRV-Instruct's raw release"):
        prepare.run(prepare.get("lrv-instruct"), src, tmp_path / "data")
    assert not (tmp_path / "data" / "download").exists()


def llava_download(base: Path) -> Path:
    """LLaVA-format records with their image folders as the releases unpack (558K: 00453/...; 665K: coco/train2017,
    gqa/images, ocr_vqa/images -- two folders named images, told apart by the image they hold)."""
    records = json.loads((FIX / "llava/records/llava_records.json").read_text())
    (base / "LLaVA-Pretrain").mkdir(parents=True)
    (base / "LLaVA-Pretrain" / "blip_laion_cc_sbu_558k.json").write_text(json.dumps(records[:1]))
    (base / "LLaVA-Instruct-150K").mkdir()
    (base / "LLaVA-Instruct-150K" / "llava_v1_5_mix665k.json").write_text(json.dumps(records[1:]))
    for rec in records:
        if "image" in rec:
            folder = "LLaVA-Pretrain/images" if rec is records[0] else "instruct-images"
            jpeg(base / folder / rec["image"])
    return base


def test_llava_training_sources_and_a_scoped_data_check(tmp_path: Path, capsys) -> None:
    src = llava_download(tmp_path / "dl")
    pope_download(tmp_path / "pope-dl")
    root = tmp_path / "data"
    for name in ("llava-laion-cc-sbu-558k", "llava-v15-665k", "llava-v15-language-only"):
        assert main(["data", "prepare", name, "--from", str(src), "--root", str(root)]) == 0
    assert main(["data", "prepare", "pope", "--from", str(tmp_path / "pope-dl"), "--root", str(root / "eval")]) == 0
    instruct = root / "download/llava-v1.5-instruct"
    links = json.loads((root / "manifests/llava-v15-665k.json").read_text())["links"]
    assert links == {"download/llava-v1.5-instruct/coco/train2017": str((src / "instruct-images/coco/train2017").resolve()),
                     "download/llava-v1.5-instruct/gqa/images": str((src / "instruct-images/gqa/images").resolve()),
                     "download/llava-v1.5-instruct/ocr_vqa/images": str((src / "instruct-images/ocr_vqa/images").resolve())}
    assert (root / "download/llava-laion-cc-sbu-558k/chat.json").is_file()
    assert [r["id"] for r in json.loads((instruct / "llava_v1_5_language_only.json").read_text())] == ["i6IyJda_0"]
    capsys.readouterr()
    scope = ["data=llava-v15", f"data.root={root}", f"eval.root={root / 'eval'}", "eval.benchmarks=[pope]"]
    assert main(["data", "check", *scope]) == 0
    out = capsys.readouterr().out
    assert "4 records (3 with image, 1 language-only, 0 bad" in out and "pope" in out and out.rstrip().endswith("ok")
    # the same config with one more benchmark (not prepared): one problem line naming the file
    assert main(["data", "check", *scope[:-1], "eval.benchmarks=[pope,vsr]"]) == 1
    out = capsys.readouterr().out
    assert f"1 problem(s):\n  {root / 'eval/vsr/test.jsonl'}: file not found" in out


def test_chair_from_coco_annotations_uses_the_chair_500_ids(tmp_path: Path, capsys) -> None:
    """`ablate data prepare chair`: COCO's instances_val2014.json placed, the CHAIR-500 images linked (the id
    list ships with ablate), captions_val2014.json optional."""
    from ablate.eval.benchmarks.captioning import CHAIR_500_IDS

    ids = [int(x) for x in CHAIR_500_IDS.read_text().split()]
    base = tmp_path / "downloads"
    images = [{"id": i, "file_name": f"COCO_val2014_{i:012d}.jpg", "width": 8, "height": 8} for i in ids + [7]]
    anns = [{"id": k, "image_id": i, "category_id": 18, "bbox": [0, 0, 4, 4], "area": 16.0, "iscrowd": 0}
            for k, i in enumerate(ids)]
    (base / "annotations").mkdir(parents=True)
    (base / "annotations" / "instances_val2014.json").write_text(json.dumps(
        {"info": {}, "licenses": [], "images": images, "annotations": anns,
         "categories": [{"id": 18, "name": "dog", "supercategory": "animal"}]}))
    for im in images:
        jpeg(base / "coco" / "val2014" / im["file_name"])
    root = tmp_path / "data" / "eval"
    assert main(["data", "prepare", "chair", "--from", str(base), "--root", str(root)]) == 0
    assert f"chair: prepared under {root} (500 chair examples, 500 images)" in capsys.readouterr().out
    assert (root / "chair/val2014").is_symlink() or (root / "chair/val2014").is_dir()
    examples = get_benchmark("chair", root).load()
    assert [int(e.example_id) for e in examples] == ids and examples[0].gold == ["dog"]


def test_every_benchmark_preparer_rebuilds_the_same_examples_from_one_download_folder(world: Path,
                                                                                      tmp_path: Path) -> None:
    """All 12 families from ONE --from folder (several image folders share a name: gqa/vsr/ai2d `images`, pope/
    vqav2 `val2014`): the shapes world's benchmarks (the real formats) are scattered as downloads are -- each
    release file under its upstream name, each image folder under its own -- and every preparer must give back
    the very examples (same fingerprint) its loader reads at the original root."""
    ev = world / "eval"
    dl = tmp_path / "downloads"
    families: dict[str, object] = {}
    for cls in BENCHMARKS.values():
        families[cls.layout.name] = cls.layout
    for name, layout in families.items():
        for spec in layout.files.values():
            dest = dl / "release" / name / spec.upstream[0]
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ev / spec.path, dest)
        for d in layout.dirs:
            if (ev / d).is_dir():
                shutil.copytree(ev / d, dl / "images" / name.replace("-", "_") / Path(d).name)
    root = tmp_path / "eval"
    for name in families:
        result = prepare.run(prepare.get(name), dl, root)
        assert not result.up_to_date and (root / "manifests" / f"{name}.json").is_file()
    for bid in BENCHMARKS:
        fresh, original = get_benchmark(bid, root), get_benchmark(bid, ev)
        assert [e.example_id for e in fresh.load()] == [e.example_id for e in original.load()], bid
        assert fresh.fingerprint == original.fingerprint, bid
    for d in ("gqa/images", "vsr/images", "ai2d/images", "pope/val2014", "vqav2/val2014", "refer/train2014"):
        assert (root / d).is_symlink() and Path(os.readlink(root / d)).name == Path(d).name
    assert check_root(root).problems == []
