"""The realistic prompt pool: chat requests like the ones consumers send, for health checks.

A probe must be indistinguishable from paid traffic, so the pool mixes the tasks people bring to
a chat model (writing, code, explanations, summaries, translation, arithmetic, planning), with
and without a system prompt, sometimes as a follow-up turn, and draws its sampling parameters
from the spread consumer requests show: mostly default temperature, some greedy or cool
settings, varied token budgets, an occasional stop sequence or seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

from coordinator.probes.sources import ProbeDraw
from protocol.chat import ChatMessage, SamplingParams
from protocol.ids import ModelId

USER_PROMPTS: tuple[str, ...] = (
    "Write a short, friendly email telling my team the Friday standup moves to 10am.",
    "Explain what a hash table is to someone who just started programming.",
    "Give me three ideas for a vegetarian dinner that takes under 30 minutes.",
    "Summarize the plot of Romeo and Juliet in four sentences.",
    "What is the difference between a list and a tuple in Python?",
    "Translate into French: 'The meeting has been postponed until next week.'",
    "Write a haiku about autumn rain on a city street.",
    "How do I reverse a string in JavaScript? Show a one-line example.",
    "What are the main causes of inflation? Keep it brief.",
    "Suggest a name for a small coffee shop that also sells used books.",
    "Write a SQL query that returns the ten customers with the highest total order value.",
    "Explain recursion using a real-world analogy.",
    "I have 3 apples, buy 5 more and give away 2. How many do I have? Explain.",
    "Draft a polite reply declining a meeting invitation because of a schedule conflict.",
    "What does HTTP status code 429 mean and how should a client handle it?",
    "Give me a packing list for a three-day hiking trip in spring.",
    "Rewrite this sentence to sound more professional: 'we kinda messed up the deadline'.",
    "Write a Python function that checks whether a number is prime.",
    "What is photosynthesis? Answer for a ten-year-old.",
    "List five tips to improve sleep quality.",
    "Explain the difference between TCP and UDP in a short paragraph.",
    "Write a product description for a stainless steel water bottle.",
    "How can I politely ask my neighbour to turn the music down?",
    "What are the pros and cons of remote work?",
    "Write a limerick about a cat who loves boxes.",
    "Explain what Git rebase does compared to merge.",
    "Give me a 20-minute bodyweight workout I can do at home.",
    "Summarize the benefits of unit testing in three bullet points.",
    "Convert 72 degrees Fahrenheit to Celsius and show the formula.",
    "Write the opening paragraph of a mystery story set in a lighthouse.",
    "What is a good way to learn a new language as an adult?",
    "Explain big-O notation with an example.",
    "Write a regular expression that matches a simple email address.",
    "What should I consider when choosing a laptop for video editing?",
    "Give me a short motivational message for a friend starting a new job.",
    "Explain how compound interest works with a small example.",
    "Write a bash command that counts the lines in every .txt file in a folder.",
    "What is the capital of Australia, and why isn't it Sydney?",
    "Outline a five-slide presentation about reducing food waste.",
    "Describe the water cycle in simple terms.",
)

SYSTEM_PROMPTS: tuple[str, ...] = (
    "You are a helpful assistant.",
    "You are a concise assistant. Answer in as few words as possible.",
    "You are an expert software engineer. Give correct, idiomatic code.",
    "You are a friendly tutor who explains things step by step.",
    "Always answer in a warm, encouraging tone.",
)

FOLLOW_UPS: tuple[str, ...] = (
    "Can you make it shorter?",
    "Thanks! Could you give one more example?",
    "Now explain it as if I were an expert.",
    "Please turn that into a bulleted list.",
)

PRIOR_ANSWERS: tuple[str, ...] = (
    "Sure, here is a first version.",
    "Here is a short explanation to start with.",
    "Of course. Here is what I would suggest.",
)

# (value, weight) pairs, shaped like the parameters consumer requests carry.
TEMPERATURES: tuple[tuple[float, float], ...] = (
    (1.0, 0.45), (0.7, 0.25), (0.0, 0.1), (0.2, 0.08), (0.5, 0.07), (1.2, 0.05),
)
TOP_PS: tuple[tuple[float, float], ...] = ((1.0, 0.75), (0.95, 0.12), (0.9, 0.13))
MAX_TOKENS: tuple[tuple[int, float], ...] = (
    (64, 0.15), (128, 0.25), (200, 0.1), (256, 0.25), (300, 0.05), (512, 0.2),
)
STOPS: tuple[tuple[tuple[str, ...], float], ...] = (((), 0.92), (("\n\n",), 0.05), (("###",), 0.03))


T = TypeVar("T")


def _weighted(rng: random.Random, choices: Sequence[tuple[T, float]]) -> T:
    values = [value for value, _ in choices]
    weights = [weight for _, weight in choices]
    return rng.choices(values, weights=weights, k=1)[0]


def realistic_params(rng: random.Random) -> SamplingParams:
    """Sampling parameters drawn from the spread consumer traffic shows."""
    return SamplingParams(
        max_tokens=_weighted(rng, MAX_TOKENS),
        temperature=_weighted(rng, TEMPERATURES),
        top_p=_weighted(rng, TOP_PS),
        stop=_weighted(rng, STOPS),
        seed=rng.randrange(1, 2**31) if rng.random() < 0.05 else None,
    )


def realistic_messages(rng: random.Random) -> tuple[ChatMessage, ...]:
    """A conversation as consumers send one: a task, maybe a system prompt, maybe a follow-up."""
    messages: list[ChatMessage] = []
    if rng.random() < 0.35:
        messages.append(ChatMessage(role="system", content=rng.choice(SYSTEM_PROMPTS)))
    messages.append(ChatMessage(role="user", content=rng.choice(USER_PROMPTS)))
    if rng.random() < 0.15:
        messages.append(ChatMessage(role="assistant", content=rng.choice(PRIOR_ANSWERS)))
        messages.append(ChatMessage(role="user", content=rng.choice(FOLLOW_UPS)))
    return tuple(messages)


class PromptPool:
    """The default probe source: a realistic chat request for any model, passed by completing."""

    def draw(self, model: ModelId, rng: random.Random) -> ProbeDraw | None:
        """A realistic request; never None, so the pool is the last source asked."""
        return ProbeDraw(messages=realistic_messages(rng), params=realistic_params(rng))
