"""The eight few-shot exemplars shared by every strategy's teacher prompt.

The questions are GSM8K train questions (rows 0, 1, 2, 3, 4, 5, 7 and 10 of `train.jsonl`); the
solutions are written for siked, one per strategy, so all strategies see the same problems.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exemplar:
    question: str
    cot: str
    l2m: str
    pot: str
    answer: float


EXEMPLARS: tuple[Exemplar, ...] = (
    Exemplar(
        question=(
            "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
            "in May. How many clips did Natalia sell altogether in April and May?"
        ),
        cot=(
            "In April Natalia sold 48 clips. In May she sold half as many, which is 48 / 2 = 24 clips. "
            "Altogether she sold 48 + 24 = 72 clips.\nThe answer is 72."
        ),
        l2m=(
            "Sub-question 1: How many clips did Natalia sell in May?\n"
            "Answer to Sub-question 1: Half as many as in April, so 48 / 2 = 24 clips.\n"
            "Sub-question 2: How many clips did Natalia sell altogether in April and May?\n"
            "Answer to Sub-question 2: 48 + 24 = 72 clips.\nThe answer is 72."
        ),
        pot=("clips_april = 48\nclips_may = clips_april / 2\nanswer = clips_april + clips_may"),
        answer=72,
    ),
    Exemplar(
        question=(
            "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of "
            "babysitting. How much did she earn?"
        ),
        cot=(
            "An hour has 60 minutes, so Weng earns 12 / 60 = $0.2 per minute. For 50 minutes she "
            "earned 0.2 * 50 = $10.\nThe answer is 10."
        ),
        l2m=(
            "Sub-question 1: How much does Weng earn per minute?\n"
            "Answer to Sub-question 1: 12 / 60 = $0.2 per minute.\n"
            "Sub-question 2: How much did she earn for 50 minutes?\n"
            "Answer to Sub-question 2: 0.2 * 50 = $10.\nThe answer is 10."
        ),
        pot=(
            "hourly_rate = 12\nminutes_worked = 50\n"
            "rate_per_minute = hourly_rate / 60\nanswer = rate_per_minute * minutes_worked"
        ),
        answer=10,
    ),
    Exemplar(
        question=(
            "Betty is saving money for a new wallet which costs $100. Betty has only half of the "
            "money she needs. Her parents decided to give her $15 for that purpose, and her "
            "grandparents twice as much as her parents. How much more money does Betty need to buy "
            "the wallet?"
        ),
        cot=(
            "Betty has half of $100, which is $50. Her parents give her $15 and her grandparents "
            "twice that, 15 * 2 = $30. She now has 50 + 15 + 30 = $95, so she still needs "
            "100 - 95 = $5.\nThe answer is 5."
        ),
        l2m=(
            "Sub-question 1: How much money does Betty have at the beginning?\n"
            "Answer to Sub-question 1: Half of $100, so 100 / 2 = $50.\n"
            "Sub-question 2: How much money do her grandparents give her?\n"
            "Answer to Sub-question 2: Twice the parents' $15, so 15 * 2 = $30.\n"
            "Sub-question 3: How much more money does Betty need?\n"
            "Answer to Sub-question 3: 100 - 50 - 15 - 30 = $5.\nThe answer is 5."
        ),
        pot=(
            "wallet_cost = 100\nsavings = wallet_cost / 2\nfrom_parents = 15\n"
            "from_grandparents = 2 * from_parents\n"
            "answer = wallet_cost - savings - from_parents - from_grandparents"
        ),
        answer=5,
    ),
    Exemplar(
        question=(
            "Julie is reading a 120-page book. Yesterday, she was able to read 12 pages and today, "
            "she read twice as many pages as yesterday. If she wants to read half of the remaining "
            "pages tomorrow, how many pages should she read?"
        ),
        cot=(
            "Today Julie read 12 * 2 = 24 pages, so since yesterday she has read 12 + 24 = 36 pages. "
            "That leaves 120 - 36 = 84 pages, and half of them is 84 / 2 = 42 pages.\nThe answer is 42."
        ),
        l2m=(
            "Sub-question 1: How many pages did Julie read today?\n"
            "Answer to Sub-question 1: Twice yesterday's 12, so 12 * 2 = 24 pages.\n"
            "Sub-question 2: How many pages are left to read?\n"
            "Answer to Sub-question 2: 120 - 12 - 24 = 84 pages.\n"
            "Sub-question 3: How many pages should she read tomorrow?\n"
            "Answer to Sub-question 3: Half of the remaining pages, 84 / 2 = 42 pages.\nThe answer is 42."
        ),
        pot=(
            "total_pages = 120\nread_yesterday = 12\nread_today = 2 * read_yesterday\n"
            "remaining = total_pages - read_yesterday - read_today\nanswer = remaining / 2"
        ),
        answer=42,
    ),
    Exemplar(
        question=(
            "James writes a 3-page letter to 2 different friends twice a week.  How many pages does "
            "he write a year?"
        ),
        cot=(
            "Each time he writes 3 * 2 = 6 pages. Twice a week makes 6 * 2 = 12 pages a week. A year "
            "has 52 weeks, so he writes 12 * 52 = 624 pages.\nThe answer is 624."
        ),
        l2m=(
            "Sub-question 1: How many pages does James write each time he writes to his friends?\n"
            "Answer to Sub-question 1: 3 pages to each of 2 friends, so 3 * 2 = 6 pages.\n"
            "Sub-question 2: How many pages does he write each week?\n"
            "Answer to Sub-question 2: He writes twice a week, so 6 * 2 = 12 pages.\n"
            "Sub-question 3: How many pages does he write a year?\n"
            "Answer to Sub-question 3: 12 * 52 = 624 pages.\nThe answer is 624."
        ),
        pot=(
            "pages_per_letter = 3\nfriends = 2\ntimes_per_week = 2\nweeks_per_year = 52\n"
            "answer = pages_per_letter * friends * times_per_week * weeks_per_year"
        ),
        answer=624,
    ),
    Exemplar(
        question=(
            "Mark has a garden with flowers. He planted plants of three different colors in it. Ten "
            "of them are yellow, and there are 80% more of those in purple. There are only 25% as "
            "many green flowers as there are yellow and purple flowers. How many flowers does Mark "
            "have in his garden?"
        ),
        cot=(
            "There are 10 yellow flowers and 80% more purple ones: 10 + 10 * 0.8 = 18 purple. Yellow "
            "and purple together make 10 + 18 = 28. Green flowers are 25% of that, 28 * 0.25 = 7. In "
            "total Mark has 28 + 7 = 35 flowers.\nThe answer is 35."
        ),
        l2m=(
            "Sub-question 1: How many purple flowers are there?\n"
            "Answer to Sub-question 1: 80% more than 10, so 10 + 10 * 0.8 = 18.\n"
            "Sub-question 2: How many yellow and purple flowers are there together?\n"
            "Answer to Sub-question 2: 10 + 18 = 28.\n"
            "Sub-question 3: How many green flowers are there?\n"
            "Answer to Sub-question 3: 25% of 28, so 28 * 0.25 = 7.\n"
            "Sub-question 4: How many flowers does Mark have in his garden?\n"
            "Answer to Sub-question 4: 28 + 7 = 35.\nThe answer is 35."
        ),
        pot=(
            "yellow = 10\npurple = yellow * (1 + 80 / 100)\ngreen = (yellow + purple) * 25 / 100\n"
            "answer = yellow + purple + green"
        ),
        answer=35,
    ),
    Exemplar(
        question=(
            "Ken created a care package to send to his brother, who was away at boarding school.  "
            "Ken placed a box on a scale, and then he poured into the box enough jelly beans to bring "
            "the weight to 2 pounds.  Then, he added enough brownies to cause the weight to triple.  "
            "Next, he added another 2 pounds of jelly beans.  And finally, he added enough gummy "
            "worms to double the weight once again.  What was the final weight of the box of "
            "goodies, in pounds?"
        ),
        cot=(
            "The jelly beans bring the weight to 2 pounds. The brownies triple it to 2 * 3 = 6 "
            "pounds. Two more pounds of jelly beans make 6 + 2 = 8 pounds. The gummy worms double "
            "it to 8 * 2 = 16 pounds.\nThe answer is 16."
        ),
        l2m=(
            "Sub-question 1: What did the box weigh after the brownies?\n"
            "Answer to Sub-question 1: The weight tripled from 2 pounds, so 2 * 3 = 6 pounds.\n"
            "Sub-question 2: What did it weigh after the second batch of jelly beans?\n"
            "Answer to Sub-question 2: 6 + 2 = 8 pounds.\n"
            "Sub-question 3: What was the final weight after the gummy worms?\n"
            "Answer to Sub-question 3: The weight doubled, so 8 * 2 = 16 pounds.\nThe answer is 16."
        ),
        pot=(
            "weight = 2\nweight = weight * 3\nweight = weight + 2\nweight = weight * 2\n"
            "answer = weight"
        ),
        answer=16,
    ),
    Exemplar(
        question=(
            "A deep-sea monster rises from the waters once every hundred years to feast on a ship "
            "and sate its hunger. Over three hundred years, it has consumed 847 people. Ships have "
            "been built larger over time, so each new ship has twice as many people as the last "
            "ship. How many people were on the ship the monster ate in the first hundred years?"
        ),
        cot=(
            "Let the first ship carry S people. The second carried 2S and the third 4S, so "
            "S + 2S + 4S = 7S = 847. Then S = 847 / 7 = 121 people.\nThe answer is 121."
        ),
        l2m=(
            "Sub-question 1: If the first ship carried S people, how many did the other two carry?\n"
            "Answer to Sub-question 1: The second carried 2S and the third 2 * 2S = 4S.\n"
            "Sub-question 2: How many people were on the three ships together?\n"
            "Answer to Sub-question 2: S + 2S + 4S = 7S, and this is 847.\n"
            "Sub-question 3: How many people were on the first ship?\n"
            "Answer to Sub-question 3: S = 847 / 7 = 121.\nThe answer is 121."
        ),
        pot=(
            "first_ship = Symbol('first_ship', positive=True)\n"
            "total_eaten = first_ship + 2 * first_ship + 4 * first_ship\n"
            "answer = solve_it([Eq(total_eaten, 847)], [first_ship])[first_ship]"
        ),
        answer=121,
    ),
)
