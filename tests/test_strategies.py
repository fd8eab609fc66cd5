import ast

import pytest

from siked.strategies import (
    Strategy,
    extract_program,
    forced_prefix,
    format_l2m,
    get_strategy,
    parse_tagged,
    register,
    strategy_names,
    student_prompt,
    student_target,
)
from siked.strategies.exemplars import EXEMPLARS
from siked.strategies.registry import STRATEGIES as _REGISTRY


def test_three_strategies_share_the_same_eight_questions():
    assert strategy_names()[:3] == ["cot", "l2m", "pot"]
    assert len(EXEMPLARS) == 8
    questions = [q for q, _ in get_strategy("cot").exemplars()]
    for name in ("l2m", "pot"):
        assert [q for q, _ in get_strategy(name).exemplars()] == questions


@pytest.mark.parametrize("name", ["cot", "l2m", "pot"])
def test_every_exemplar_is_valid_in_its_strategy(name):
    strategy = get_strategy(name)
    for _, solution in strategy.exemplars():
        assert strategy.invalid_reason(strategy.clean(solution)) is None


def test_cot_and_l2m_exemplars_end_with_the_answer():
    for ex in EXEMPLARS:
        final = f"The answer is {ex.answer:g}."
        assert ex.cot.endswith(final)
        assert ex.l2m.endswith(final)


def test_pot_exemplars_compute_their_answer():
    # Plain arithmetic exemplars are checked here with a restricted eval of their AST; the one
    # that uses sympy runs in the sandbox tests.
    for ex in EXEMPLARS:
        if "solve_it" in ex.pot:
            continue
        namespace: dict = {}
        exec(compile(ast.parse(ex.pot), "<exemplar>", "exec"), {"__builtins__": {}}, namespace)
        assert namespace["answer"] == pytest.approx(ex.answer)


def test_teacher_prompt_ends_with_the_question():
    prompt = get_strategy("l2m").teacher_prompt("  How many eggs?  ")
    assert prompt.endswith("Question: How many eggs?\nAnswer:\n")
    assert prompt.count("Question:") == 9
    assert "Sub-question 1:" in prompt


def test_teacher_messages_alternate_roles():
    messages = get_strategy("cot").teacher_messages("How many eggs?")
    assert messages[0]["role"] == "system"
    roles = [m["role"] for m in messages[1:]]
    assert roles == ["user", "assistant"] * 8 + ["user"]
    assert messages[-1]["content"] == "Question: How many eggs?"


def test_clean_strips_tag_and_continuations():
    cot = get_strategy("cot")
    text = "[cot]: She has 3 + 4 = 7.\nThe answer is 7.\n\nQuestion: Another one?\nAnswer: 5"
    assert cot.clean(text) == "She has 3 + 4 = 7.\nThe answer is 7."
    # a different strategy's tag is not stripped: that is a wrong-format solution
    assert get_strategy("pot").clean("[cot]: x").startswith("[cot]")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("answer = 3", None),
        ("```python\ntotal = 3 * 4\nanswer = total\n```\nThis prints 12.", None),
        ("answer += 1", None),
        ("total = 3", "never assigns `answer`"),
        ("answer = (", "not valid Python"),
        ("", "empty program"),
    ],
)
def test_pot_validity(text, reason):
    got = get_strategy("pot").invalid_reason(text)
    if reason is None:
        assert got is None
    else:
        assert reason in got


def test_extract_program_prefers_the_fenced_block():
    text = "Here is the code:\n```py\nx = 2\nanswer = x * 3\n```\nDone."
    assert extract_program(text) == "x = 2\nanswer = x * 3"
    assert extract_program("answer = 1\n") == "answer = 1"


def test_l2m_validity_and_format():
    l2m = get_strategy("l2m")
    text = format_l2m([("How many in May?", "48 / 2 = 24."), ("Total?", "48 + 24 = 72.")], "72")
    assert text.splitlines()[0] == "Sub-question 1: How many in May?"
    assert text.splitlines()[3] == "Answer to Sub-question 2: 48 + 24 = 72."
    assert text.endswith("The answer is 72.")
    assert l2m.invalid_reason(text) is None
    assert "Sub-question" in l2m.invalid_reason("48 + 24 = 72. The answer is 72.")
    assert "no sub-question has an answer" in l2m.invalid_reason("Sub-question 1: How many?")


def test_student_format_round_trip():
    target = student_target("pot", "  answer = 2 + 3\n")
    assert target == "[pot]: answer = 2 + 3"
    assert parse_tagged(target) == ("pot", "answer = 2 + 3")
    assert parse_tagged("[L2M]: Sub-question 1: x") == ("l2m", "Sub-question 1: x")
    assert parse_tagged("[gpt]: hello") == (None, "[gpt]: hello")
    assert parse_tagged("no tag here") == (None, "no tag here")
    assert forced_prefix("cot") == "[cot]: "
    with pytest.raises(KeyError, match="unknown strategy"):
        forced_prefix("tot")


def test_student_prompt_styles():
    prompt = student_prompt("What is 2 + 3?", strategies=["cot", "l2m", "pot"])
    assert "### Instruction:" in prompt and prompt.endswith("### Response:\n")
    assert "[cot]" in prompt and "[l2m]" in prompt and "[pot]" in prompt
    with pytest.raises(ValueError, match="chat template"):
        student_prompt("q", style="chat", strategies=["cot"])

    class FakeChatTokenizer:
        chat_template = "{{ messages }}"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            assert not tokenize and add_generation_prompt
            return "<user>" + messages[0]["content"] + "<assistant>"

    chat = student_prompt("What is 2 + 3?", style="chat", tokenizer=FakeChatTokenizer(), strategies=["cot"])
    assert chat.startswith("<user>Solve") and chat.endswith("What is 2 + 3?<assistant>")


def test_a_fourth_strategy_joins_without_touching_the_others():
    class TreeOfThought(Strategy):
        name = "tot"
        title = "Tree of thought"
        instruction = "Explore branches."

        def exemplar_solution(self, exemplar):
            return exemplar.cot

        def invalid_reason(self, text):
            return None if text else "empty"

    register(TreeOfThought())
    try:
        assert get_strategy("tot").tag == "[tot]"
        assert "[tot] for tree of thought" in student_prompt("q", strategies=["cot", "tot"])
        assert parse_tagged("[tot]: go") == ("tot", "go")
        with pytest.raises(ValueError, match="already registered"):
            register(TreeOfThought())
    finally:
        _REGISTRY.pop("tot")


def test_the_students_prompt_lists_the_taught_strategies_not_every_registered_one(monkeypatch):
    from siked.config import SikedConfig
    from siked.records import Problem
    from siked.student.backend import Completion
    from siked.student.generate import Student
    from siked.student.models import StudentSource
    from siked.student.train import TrainExample, sft_records

    class TreeOfThought(Strategy):
        name, title, instruction = "tot", "Tree of thought", "Explore branches."

        def exemplar_solution(self, exemplar):
            return exemplar.cot

        def invalid_reason(self, text):
            return None

    class Recording:
        """A generation backend that keeps the prompts it is given."""

        tokenizer, prompts = None, []

        def complete(self, prompts, *, samples, greedy, progress=None, max_new_tokens=None, seed=None):
            self.prompts += prompts
            return [[Completion("[pot]: answer = 5", 4)] for _ in prompts]

        def close(self):
            pass

    def listed(prompt):
        return [name for name in ("cot", "l2m", "pot", "tot") if f"[{name}] for" in prompt]

    register(TreeOfThought())  # registered, e.g. by a plugin, but not taught in this run
    try:
        config = SikedConfig(teacher={"strategies": ["pot", "cot"]})
        [trained] = sft_records([TrainExample("What is 2 + 3?", "pot", "answer = 5")], "alpaca", None,
                                config.teacher.strategies)
        assert listed(trained["prompt"]) == ["cot", "pot"]
        assert trained["prompt"].index("[pot] for") < trained["prompt"].index("[cot] for")  # in their order
        problems = [Problem(id="q", question="What is 2 + 3?", answer=5.0, answer_text="5", source="toy", split="test")]
        untrained, backend = StudentSource(spec="m", base="m"), Recording()
        monkeypatch.setattr("siked.student.generate.open_backend", lambda source, cfg, style: backend)

        def generate(source: StudentSource) -> None:
            Student.load(source, config, progress=False).generate(problems, greedy=True)

        generate(untrained)
        assert backend.prompts == [trained["prompt"]]  # sampled on the prompt it is trained on
        taught_before = StudentSource(spec="m", base="m", manifest={"prompt_style": "alpaca", "strategies": ["cot"]})
        generate(taught_before)
        assert listed(backend.prompts[-1]) == ["cot"]  # a trained model: what its own training listed
    finally:
        _REGISTRY.pop("tot")
