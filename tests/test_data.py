"""Dataset loaders on the real GSM8K / SVAMP release files and on ASDiv / MultiArith samples."""

from __future__ import annotations

import gzip
import json
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import datasets
import pytest

from siked.config import DatasetSpec
from siked.data import (
    DATASETS,
    DataError,
    load_problems,
    load_spec,
    parse_data_spec,
    parse_gold,
    split_validation,
)
from siked.records import Problem

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ASDIV_XML = FIXTURES / "asdiv" / "ASDiv.xml"
MULTIARITH_JSON = FIXTURES / "multiarith" / "MultiArith.json"


@pytest.fixture(scope="module")
def gsm8k_dir() -> Path:
    directory = SHARED / "gsm8k"
    if not (directory / "train.jsonl").is_file():
        pytest.skip(f"real GSM8K files not found under {directory}")
    return directory


@pytest.fixture(scope="module")
def svamp_file() -> Path:
    path = SHARED / "svamp" / "SVAMP.json"
    if not path.is_file():
        pytest.skip(f"real SVAMP file not found at {path}")
    return path


@pytest.fixture(scope="module")
def gsm8k_train(gsm8k_dir: Path) -> list[Problem]:
    return load_problems("gsm8k", "train", data_file=gsm8k_dir / "train.jsonl")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows).to_parquet(str(path))


# --- gold parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18", 18.0),
        ("1,080", 1080.0),
        ("109,200,000", 109200000.0),
        ("-3", -3.0),
        ("\u22124", -4.0),
        ("$5.50", 5.5),
        ("$ 3", 3.0),
        ("-$2", -2.0),
        ("25%", 25.0),
        ("9 (apples)", 9.0),
        ("12 (inches of snow)", 12.0),
        ("128 (sq. ft)", 128.0),
        ("65.0 (dollars)", 65.0),
        ("3/4", 0.75),
        ("-3/4", -0.75),
        ("1 1/2 (cups)", 1.5),
        (".5", 0.5),
        (" 7 ", 7.0),
        (51.0, 51.0),
        (7, 7.0),
    ],
)
def test_parse_gold_numbers(text: str | float, expected: float) -> None:
    assert parse_gold(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    [
        "3:4",
        "2 and 5",
        "18; 12",
        "8 (ft); 16 (ft)",
        "Mrs. Hilt",
        "Vendor 2",
        "2, 5",
        "",
        "1/0",
        "nan",
        None,
        True,
    ],
)
def test_parse_gold_rejects_non_numbers(text: object) -> None:
    assert parse_gold(text) is None


# --- GSM8K ----------------------------------------------------------------------------------


def test_gsm8k_train_with_socratic_sub_questions(
    gsm8k_dir: Path, gsm8k_train: list[Problem]
) -> None:
    raw = read_jsonl(gsm8k_dir / "train.jsonl")
    socratic = read_jsonl(gsm8k_dir / "train_socratic.jsonl")
    assert len(gsm8k_train) == 7473
    assert [p.id for p in gsm8k_train[:3]] == ["gsm8k/train/0", "gsm8k/train/1", "gsm8k/train/2"]
    assert gsm8k_train[-1].id == "gsm8k/train/7472"
    assert all(p.numeric_gold for p in gsm8k_train)
    assert all(p.sub_questions and len(p.sub_questions) == len(p.sub_answers) for p in gsm8k_train)
    assert all(p.solution == "\n".join(p.sub_answers) for p in gsm8k_train)
    assert not any("####" in p.solution for p in gsm8k_train)
    for index in (0, 1234, 7472):
        problem = gsm8k_train[index]
        assert problem.question == raw[index]["question"]
        first_line = socratic[index]["answer"].split("\n")[0]
        assert problem.sub_questions[0] == first_line.split(" ** ")[0]
        assert problem.sub_answers[0] == first_line.split(" ** ")[1]
    first = gsm8k_train[0]
    assert first.answer == 72.0 and first.answer_text == "72"
    assert first.sub_questions[0] == "How many clips did Natalia sell in May?"
    assert "<<48/2=24>>" in first.solution  # calculator annotations are kept


def test_gsm8k_comma_and_negative_golds(gsm8k_dir: Path, gsm8k_train: list[Problem]) -> None:
    finals = [
        row["answer"].rsplit("#### ", 1)[1].strip() for row in read_jsonl(gsm8k_dir / "train.jsonl")
    ]
    with_commas = [i for i, text in enumerate(finals) if "," in text]
    negatives = [i for i, text in enumerate(finals) if text.startswith("-")]
    assert len(with_commas) == 79 and len(negatives) == 3
    for index in with_commas + negatives:
        assert gsm8k_train[index].answer == float(finals[index].replace(",", ""))
        assert gsm8k_train[index].answer_text == finals[index]
    assert all(gsm8k_train[i].answer < 0 for i in negatives)


def test_gsm8k_test_from_file_directory_and_socratic_file_agree(gsm8k_dir: Path) -> None:
    from_file = load_problems("gsm8k", "test", data_file=gsm8k_dir / "test.jsonl")
    assert len(from_file) == 1319
    assert all(p.sub_questions for p in from_file)
    assert load_problems("gsm8k", "test", data_file=gsm8k_dir) == from_file
    assert load_problems("gsm8k", "test", data_file=gsm8k_dir / "test_socratic.jsonl") == from_file
    assert (
        load_problems("gsm8k", "test", data_file=gsm8k_dir / "test.jsonl", limit=10)
        == from_file[:10]
    )


def test_gsm8k_without_socratic_sibling(gsm8k_dir: Path, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "test.jsonl", read_jsonl(gsm8k_dir / "test.jsonl")[:5])
    problems = load_problems("gsm8k", "test", data_file=path)
    assert len(problems) == 5 and all(p.sub_questions == () for p in problems)
    assert problems[0].solution.startswith("Janet sells")
    with pytest.raises(DataError, match="test_socratic.jsonl"):
        load_problems("gsm8k_socratic", "test", data_file=path)


def test_gsm8k_misaligned_socratic_file_is_an_error(gsm8k_dir: Path, tmp_path: Path) -> None:
    main = read_jsonl(gsm8k_dir / "test.jsonl")[:4]
    socratic = read_jsonl(gsm8k_dir / "test_socratic.jsonl")[:4]
    write_jsonl(tmp_path / "test.jsonl", main)
    write_jsonl(
        tmp_path / "test_socratic.jsonl", [socratic[0], socratic[2], socratic[1], socratic[3]]
    )
    with pytest.raises(DataError, match=r"test\.jsonl:2 and .*test_socratic\.jsonl:2"):
        load_problems("gsm8k", "test", data_file=tmp_path / "test.jsonl")


def test_gsm8k_bad_rows_name_file_and_line(tmp_path: Path) -> None:
    good = {"question": "What is 1+1?", "answer": "1+1=2\n#### 2"}
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps(good) + "\n" + '{"question": "oops", "answer": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"test\.jsonl:2: not valid JSON"):
        load_problems("gsm8k", "test", data_file=path, socratic=False)
    write_jsonl(path, [good, {"question": "No final line", "answer": "just text"}])
    with pytest.raises(DataError, match=r"test\.jsonl:2: answer has no final '#### N' line"):
        load_problems("gsm8k", "test", data_file=path, socratic=False)
    write_jsonl(path, [good, {"question": "no answer"}])
    with pytest.raises(DataError, match=r"test\.jsonl:2: missing field\(s\) 'answer'"):
        load_problems("gsm8k", "test", data_file=path, socratic=False)


def test_gsm8k_file_of_other_split_is_refused(gsm8k_dir: Path) -> None:
    with pytest.raises(DataError, match="'test' split, but split 'train'"):
        load_problems("gsm8k", "train", data_file=gsm8k_dir / "test.jsonl")


def test_gsm8k_hub_snapshot_equals_raw_files(gsm8k_dir: Path, tmp_path: Path) -> None:
    main = read_jsonl(gsm8k_dir / "test.jsonl")[:50]
    socratic = read_jsonl(gsm8k_dir / "test_socratic.jsonl")[:50]
    snapshot = tmp_path / "gsm8k_hub"
    write_parquet(snapshot / "main" / "test-00000-of-00001.parquet", main)
    write_parquet(snapshot / "socratic" / "test-00000-of-00001.parquet", socratic)
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    write_jsonl(raw_dir / "test.jsonl", main)
    write_jsonl(raw_dir / "test_socratic.jsonl", socratic)

    from_hub = load_problems("gsm8k", "test", data_file=snapshot)
    from_raw = load_problems("gsm8k", "test", data_file=raw_dir / "test.jsonl")
    assert len(from_hub) == 50
    assert from_hub == from_raw
    assert from_hub == load_problems("gsm8k", "test", data_file=gsm8k_dir / "test.jsonl", limit=50)
    assert load_problems("gsm8k", "test", hub_id=str(snapshot), limit=7) == from_raw[:7]


def test_unreachable_hub_suggests_data_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match="openai/gsm8k.*--data-file"):
        load_problems("gsm8k", "test")


# --- SVAMP ----------------------------------------------------------------------------------


def test_svamp_raw_file(svamp_file: Path) -> None:
    rows = json.loads(svamp_file.read_text(encoding="utf-8"))
    problems = load_problems("svamp", "test", data_file=svamp_file)
    assert len(problems) == 1000
    assert problems[0].id == "svamp/test/chal-1" and problems[-1].id == "svamp/test/chal-1000"
    assert all(p.numeric_gold for p in problems)
    assert [p.answer for p in problems] == [row["Answer"] for row in rows]
    assert problems[0].question == (
        "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack, "
        "how much do you have to pay to buy each pack?"
    )
    assert problems[0].answer_text == "51" and problems[0].meta["type"] == "Subtraction"
    for problem, row in zip(problems, rows, strict=True):
        assert "  " not in problem.question
        if row["Body"].endswith("."):
            assert problem.question == f"{row['Body']} {row['Question']}"
        else:
            assert problem.question.startswith(row["Body"] + ", ")
    assert load_problems("svamp", "test", data_file=svamp_file.parent, limit=3) == problems[:3]


def test_svamp_raw_file_has_only_a_test_split(svamp_file: Path) -> None:
    with pytest.raises(DataError, match="split 'test'"):
        load_problems("svamp", "train", data_file=svamp_file)


def test_svamp_hub_snapshot_matches_raw(svamp_file: Path, tmp_path: Path) -> None:
    rows = json.loads(svamp_file.read_text(encoding="utf-8"))[:40]
    hub_rows = [dict(row, question_concat=f"{row['Body']} {row['Question']}") for row in rows]
    write_parquet(tmp_path / "svamp" / "data" / "test-00000-of-00001.parquet", hub_rows)
    from_hub = load_problems("svamp", "test", data_file=tmp_path / "svamp")
    assert from_hub == load_problems("svamp", "test", data_file=svamp_file, limit=40)

    concat_only = [
        {"ID": r["ID"], "question_concat": r["question_concat"], "Answer": str(r["Answer"])}
        for r in hub_rows
    ]
    write_parquet(tmp_path / "concat" / "data" / "test-00000-of-00001.parquet", concat_only)
    problems = load_problems("svamp", "test", data_file=tmp_path / "concat")
    assert problems[0].question == f"{rows[0]['Body']} {rows[0]['Question']}"
    assert [p.answer for p in problems] == [p.answer for p in from_hub]


# --- ASDiv ----------------------------------------------------------------------------------


def test_asdiv_raw_file_keeps_non_numeric_answers() -> None:
    problems = {
        p.id.rsplit("/", 1)[1]: p for p in load_problems("asdiv", "test", data_file=ASDIV_XML)
    }
    assert len(problems) == 10
    assert problems["nluds-9001"].id == "asdiv/test/nluds-9001"
    numeric = {key: p.answer for key, p in problems.items() if p.numeric_gold}
    assert numeric == {
        "nluds-9001": 9.0,
        "nluds-9004": 9.0,
        "nluds-9005": 5.25,
        "nluds-9006": 0.75,
        "nluds-9009": 2200.0,
        "nluds-9010": -6.0,
    }
    non_numeric = {key: p.answer_text for key, p in problems.items() if not p.numeric_gold}
    assert non_numeric == {
        "nluds-9002": "3:4",
        "nluds-9003": "2 and 5",
        "nluds-9007": "Kim",
        "nluds-9008": "8 (ft); 16 (ft)",
    }
    assert problems["nluds-9001"].answer_text == "9 (apples)"
    assert problems["nluds-9004"].question == (
        "A baker made 36 rolls. If she puts them into bags of 4, how many bags does she fill?"
    )
    assert problems["nluds-9009"].question.endswith("on both days?")
    assert problems["nluds-9005"].meta == {
        "grade": 5,
        "solution_type": "Sum",
        "formula": "3.75+1.50=5.25",
    }
    assert problems["nluds-9007"].meta["formula"] == "3*10=30 (cents) > 5*5=25 (cents)"


def test_asdiv_hub_snapshot(tmp_path: Path) -> None:
    tags = {
        "body": "Body",
        "question": "Question",
        "solution_type": "Solution-Type",
        "answer": "Answer",
        "formula": "Formula",
    }
    rows = [
        {column: element.findtext(tag) for column, tag in tags.items()}
        for element in ET.parse(ASDIV_XML).getroot().iter("Problem")
    ]
    write_parquet(tmp_path / "asdiv" / "validation-00000-of-00001.parquet", rows)
    from_hub = load_problems("asdiv", "validation", data_file=tmp_path)
    raw = load_problems("asdiv", "validation", data_file=ASDIV_XML.parent)
    assert [p.id for p in from_hub[:2]] == ["asdiv/validation/0", "asdiv/validation/1"]
    assert [(p.question, p.answer, p.answer_text) for p in from_hub] == [
        (p.question, p.answer, p.answer_text) for p in raw
    ]


def test_asdiv_bad_input(tmp_path: Path) -> None:
    broken = tmp_path / "ASDiv.xml"
    broken.write_text(
        "<ProblemSet>\n<Problem ID='x'>\n<Body>unclosed\n</ProblemSet>\n", encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"ASDiv\.xml:4:\d+: invalid XML"):
        load_problems("asdiv", "test", data_file=broken)
    with pytest.raises(DataError, match="'test' or 'validation'"):
        load_problems("asdiv", "train", data_file=ASDIV_XML)


# --- MultiArith -----------------------------------------------------------------------------


def test_multiarith_raw_file() -> None:
    problems = load_problems("multiarith", "test", data_file=MULTIARITH_JSON)
    assert [p.id for p in problems] == [f"multiarith/test/{i}" for i in (0, 1, 2, 5, 7)]
    assert problems[0].question == (
        "Maria picked 12 apples and her brother picked 8. If they ate 5 of the apples, "
        "how many apples do they have left?"
    )
    assert "  " not in problems[1].question
    assert [p.answer for p in problems] == [15.0, 24.0, 9.0, 30.0, None]
    assert problems[4].answer_text == "6, 14"
    assert problems[0].meta["equations"] == ["X=((12.0+8.0)-5.0)"]


def test_multiarith_hub_snapshot(tmp_path: Path) -> None:
    rows = json.loads(MULTIARITH_JSON.read_text(encoding="utf-8"))
    hub_rows = [
        {"question": r["sQuestion"], "final_ans": str(int(r["lSolutions"][0]))} for r in rows[:4]
    ]
    (tmp_path / "test.json").write_text(json.dumps(hub_rows), encoding="utf-8")
    (tmp_path / "train.json").write_text(json.dumps(hub_rows[:1]), encoding="utf-8")
    problems = load_problems("multiarith", "test", data_file=tmp_path)
    assert [p.id for p in problems] == [f"multiarith/test/{i}" for i in range(4)]
    raw = load_problems("multiarith", "test", data_file=MULTIARITH_JSON)
    assert [(p.question, p.answer) for p in problems] == [(p.question, p.answer) for p in raw[:4]]
    assert len(load_problems("multiarith", "train", data_file=tmp_path)) == 1


# --- gsm_symbolic ---------------------------------------------------------------------------


def test_gsm_symbolic_is_deterministic_and_splits_are_disjoint() -> None:
    train = load_problems("gsm_symbolic", "train", limit=300)
    test = load_problems("gsm_symbolic", "test", limit=100)
    assert load_problems("gsm_symbolic", "train", limit=300) == train
    assert load_problems("gsm_symbolic", "train", limit=50) == train[:50]
    assert len(train) == 300 and len(test) == 100
    assert not {p.question for p in train} & {p.question for p in test}
    assert len({p.question for p in test}) == 100
    other_seed = load_problems("gsm_symbolic", "train", limit=50, seed=7)
    assert [p.question for p in other_seed] != [p.question for p in train[:50]]
    assert train[0].id == "gsm_symbolic/train/0" and all(
        p.id.startswith("gsm_symbolic/test/") for p in test
    )


def test_gsm_symbolic_problem_fields() -> None:
    import reasoning_gym

    problems = load_problems("gsm_symbolic", "train", limit=20)
    entries = reasoning_gym.create_dataset("gsm_symbolic", size=20, seed=problems[0].meta["seed"])
    for problem in problems:
        entry = entries[problem.meta["index"]]
        assert entry["question"] == f"{problem.question} {problem.meta['instruction']}"
        assert problem.answer == float(entry["metadata"]["answer_value"])
        assert "####" not in problem.solution
        assert entry["metadata"]["answer_cot"].startswith(problem.solution)
    kept = load_problems("gsm_symbolic", "train", limit=3, keep_instruction=True)
    assert kept[0].question.endswith("Do not include units.") and "instruction" not in kept[0].meta


def test_gsm_symbolic_default_sizes() -> None:
    assert len(load_problems("gsm_symbolic", "test")) == 200
    with pytest.raises(DataError, match="reads no file"):
        load_problems("gsm_symbolic", "test", data_file="x.jsonl")


def test_gsm_symbolic_templates_restrict_both_splits_and_keep_them_apart() -> None:
    import reasoning_gym

    chosen = [0, 3, 10]
    train = load_problems("gsm_symbolic", "train", limit=90, templates=chosen)
    test = load_problems("gsm_symbolic", "test", limit=60, templates=chosen)
    assert len(train) == 90 and len(test) == 60
    assert {p.meta["template"] for p in train} == {p.meta["template"] for p in test} == set(chosen)
    assert not {p.question for p in train} & {p.question for p in test}
    assert load_problems("gsm_symbolic", "train", limit=30, templates=chosen) == train[:30]
    entries = reasoning_gym.create_dataset("gsm_symbolic", size=train[-1].meta["index"] + 1, seed=0)
    for problem in train:
        assert entries.task_indices[problem.meta["index"]] == problem.meta["template"]
        assert entries[problem.meta["index"]]["question"].startswith(problem.question)
    unrestricted = load_problems("gsm_symbolic", "train", limit=40)
    assert all(entries.task_indices[p.meta["index"]] == p.meta["template"] for p in unrestricted[:20])


def test_gsm_symbolic_unknown_template_is_an_error() -> None:
    with pytest.raises(DataError, match=r"unknown template\(s\) \[32, 500\]"):
        load_problems("gsm_symbolic", "train", limit=3, templates=[1, 32, 500])
    with pytest.raises(DataError, match="no template"):
        load_problems("gsm_symbolic", "train", limit=3, templates=[])


# --- generic JSONL --------------------------------------------------------------------------


def test_jsonl_with_custom_fields(tmp_path: Path) -> None:
    rows = [
        {"uid": "a1", "prompt": "What is 2+3?", "gold": {"value": 5}, "work": "2+3=5"},
        {"uid": "a2", "prompt": "Half of 9?", "gold": {"value": "4.5"}, "work": "9/2=4.5"},
        {"uid": "a3", "prompt": "Ratio of 2 to 4?", "gold": {"value": "1:2"}, "work": "2:4=1:2"},
    ]
    path = write_jsonl(tmp_path / "mine.jsonl", rows)
    problems = load_problems(
        "jsonl",
        "dev",
        data_file=path,
        question_field="prompt",
        answer_field="gold.value",
        id_field="uid",
        solution_field="work",
        source="mine",
    )
    assert [p.id for p in problems] == ["mine/dev/a1", "mine/dev/a2", "mine/dev/a3"]
    assert [p.answer for p in problems] == [5.0, 4.5, None]
    assert [p.answer_text for p in problems] == ["5", "4.5", "1:2"]
    assert problems[1].solution == "9/2=4.5" and problems[0].source == "mine"
    default_ids = load_problems(
        "jsonl", "dev", data_file=path, question_field="prompt", answer_field="gold.value", limit=2
    )
    assert [p.id for p in default_ids] == ["jsonl/dev/0", "jsonl/dev/1"]


def test_jsonl_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(
        '{"question": "1+1?", "answer": 2}\n\n{"question": "2+2?", "answer": 4\n', encoding="utf-8"
    )
    with pytest.raises(DataError, match=re.escape(f"{path}:3: not valid JSON")):
        load_problems("jsonl", "test", data_file=path)
    write_jsonl(path, [{"question": "1+1?", "answer": 2}, {"question": "2+2?", "result": 4}])
    with pytest.raises(DataError, match=re.escape(f"{path}:2: missing field 'answer'")):
        load_problems("jsonl", "test", data_file=path)
    write_jsonl(path, [{"q": "1+1?", "answer": 2, "id": 1}, {"q": "2+2?", "answer": 4, "id": 1}])
    with pytest.raises(DataError, match=r":2: id '1' repeats the one on line 1"):
        load_problems("jsonl", "test", data_file=path, question_field="q", id_field="id")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'absent.jsonl'}: no such file")):
        load_problems("jsonl", "test", data_file=tmp_path / "absent.jsonl")


def test_jsonl_gzip_is_read_and_found_beside_the_plain_name(tmp_path: Path) -> None:
    rows = [{"question": "1+1?", "answer": 2}, {"question": "2+2?", "answer": 4}]
    plain = write_jsonl(tmp_path / "plain.jsonl", rows)
    packed = tmp_path / "packed.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    expected = [(p.question, p.answer) for p in load_problems("jsonl", "test", data_file=plain)]
    assert expected == [("1+1?", 2.0), ("2+2?", 4.0)]
    for path in (packed, tmp_path / "packed.jsonl"):  # the second exists only compressed
        assert [(p.question, p.answer) for p in load_problems("jsonl", "test", data_file=path)] == expected
    packed.write_bytes(gzip.compress(b'{"question": "1+1?", "answer": 2}\n{"question": \n'))
    with pytest.raises(DataError, match=re.escape(f"{packed}:2: not valid JSON")):
        load_problems("jsonl", "test", data_file=tmp_path / "packed.jsonl")
    packed.write_bytes(gzip.compress(plain.read_bytes())[:-12])  # cut short, as an interrupted copy
    with pytest.raises(DataError, match=re.escape(f"{packed}: cannot be read (EOFError: ")):
        load_problems("jsonl", "test", data_file=packed)
    plain.write_bytes(b'{"question": "\xff", "answer": 1}\n')
    with pytest.raises(DataError, match=re.escape(f"{plain}: cannot be read (UnicodeDecodeError: ")):
        load_problems("jsonl", "test", data_file=plain)


# --- validation split -----------------------------------------------------------------------


def test_split_validation_is_stable_and_disjoint(gsm8k_train: list[Problem]) -> None:
    train, validation = split_validation(gsm8k_train, 0.1, seed=0)
    assert len(train) + len(validation) == len(gsm8k_train)
    assert not {p.id for p in train} & {p.id for p in validation}
    assert 0.08 * len(gsm8k_train) < len(validation) < 0.12 * len(gsm8k_train)
    train_ids = {p.id for p in train}
    assert train == [p for p in gsm8k_train if p.id in train_ids]  # input order kept

    shuffled = list(gsm8k_train)
    random.Random(1).shuffle(shuffled)
    train_s, validation_s = split_validation(shuffled, 0.1, seed=0)
    assert {p.id for p in validation_s} == {p.id for p in validation}

    _, validation_head = split_validation(gsm8k_train[:1000], 0.1, seed=0)
    assert {p.id for p in validation_head} == {
        p.id for p in validation if int(p.id.rsplit("/", 1)[1]) < 1000
    }

    _, validation_other = split_validation(gsm8k_train, 0.1, seed=1)
    assert {p.id for p in validation_other} != {p.id for p in validation}


def test_split_validation_edges() -> None:
    problems = load_problems("gsm_symbolic", "train", limit=3)
    assert split_validation(problems, 0.0, seed=0) == (problems, [])
    train, validation = split_validation(problems, 0.01, seed=0)
    assert len(validation) == 1 and len(train) == 2
    with pytest.raises(ValueError, match="fraction"):
        split_validation(problems, 1.0, seed=0)


# --- registry and specs ---------------------------------------------------------------------


def test_registry_and_specs(svamp_file: Path) -> None:
    assert {"gsm8k", "svamp", "asdiv", "multiarith", "gsm_symbolic", "jsonl"} <= set(DATASETS)
    assert all(info.description for info in DATASETS.values())
    assert parse_data_spec("gsm8k:test") == ("gsm8k", "test")
    for bad in ("gsm8k", "gsm8k:", ":test", "a:b:c"):
        with pytest.raises(DataError, match="NAME:SPLIT"):
            parse_data_spec(bad)
    with pytest.raises(DataError, match="known: gsm8k, "):
        parse_data_spec("mnist:test")
    with pytest.raises(DataError, match="known: gsm8k, "):
        load_problems("mnist", "test")
    with pytest.raises(DataError, match="no option.*colour.*accepts: hub_id"):
        load_problems("svamp", "test", data_file=svamp_file, colour="red")
    with pytest.raises(
        DataError, match=re.escape(f"{svamp_file.parent / 'nope.json'}: no such file")
    ):
        load_problems("svamp", "test", data_file=svamp_file.parent / "nope.json")
    spec = DatasetSpec(name="svamp", split="test", file=svamp_file, limit=5)
    assert [p.id for p in load_spec(spec)] == [f"svamp/test/chal-{i}" for i in range(1, 6)]


def test_gsm_symbolic_per_template_balances_each_split_over_its_templates():
    from collections import Counter

    from siked.config import ConfigError, load_config
    from siked.data import load_spec

    for split in ("train", "test"):
        problems = load_problems("gsm_symbolic", split, None, None, templates=[10, 16, 43], per_template=4)
        assert Counter(p.meta["template"] for p in problems) == {10: 4, 16: 4, 43: 4}
    unbalanced = load_problems("gsm_symbolic", "test", None, 12, templates=[10, 16, 43])
    assert len(unbalanced) == 12  # without it, a split follows reasoning-gym's draw of templates
    config = load_config(None, ["data.train={name: gsm_symbolic, split: train, templates: [10, 16], per_template: 3}"])
    assert Counter(p.meta["template"] for p in load_spec(config.data.train)) == {10: 3, 16: 3}
    with pytest.raises(ConfigError, match="give `templates` too"):
        load_config(None, ["data.train={name: gsm_symbolic, split: train, per_template: 3}"])


def test_validation_by_template_holds_out_the_same_share_of_every_template():
    from collections import Counter

    from siked.data.splits import split_validation_by_template

    problems = load_problems("gsm_symbolic", "train", None, None, templates=[10, 16, 43], per_template=10)
    train, validation = split_validation_by_template(problems, 0.4, seed=0)
    assert Counter(p.meta["template"] for p in validation) == {10: 4, 16: 4, 43: 4}
    assert len(train) == 18 and not {p.id for p in train} & {p.id for p in validation}
    again, _ = split_validation_by_template(list(reversed(problems)), 0.4, seed=0)
    assert {p.id for p in again} == {p.id for p in train}  # the ids decide, not the order
    _, other = split_validation_by_template(problems, 0.4, seed=1)
    assert {p.id for p in other} != {p.id for p in validation}
