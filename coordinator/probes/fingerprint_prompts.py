"""Fingerprint prompts drawn from a deployment's secret: never in the repository, rotated at will.

A fingerprint compares a node's greedy answer with the genuine weights' answer to the same prompt.
Were the prompts fixed and public, a cheater could answer them from a cache and serve a cheaper
model to everyone else. Here each deployment draws its prompts from its own secret (HMAC-keyed
randomness over the model id and a rotation epoch): an ordinary-looking request built from a
task, its subjects, a tone and a length, out of more than 10^10 (:func:`combinations`), so the set
in use can be neither known nor precomputed. Rotating (a new epoch) draws a fresh set; the
coordinator's reference run (``koretex-coordinator models fingerprint``) computes their genuine
answers.
"""

from __future__ import annotations

import hashlib
import hmac
import random

PROMPTS_PER_FINGERPRINT = 8

TASKS: tuple[str, ...] = (
    "Write a short poem about {subject}.",
    "Explain {subject} to {audience}.",
    "Give me three ideas for {activity}.",
    "What are the pros and cons of {choice}?",
    "Suggest a name for {thing}.",
    "Write a two-sentence story about {subject}.",
    "Describe {place} in a few sentences.",
    "How do I get better at {skill}?",
    "List five facts about {subject}.",
    "Write a friendly note inviting a friend to {activity}.",
    "What should I know before {choice}?",
    "Give me a tip for {skill}.",
    "Write one sentence that uses the words {word}, {word2} and {word3}.",
    "Which is the odd one out: {word}, {word2}, {word3}? Say why.",
    "Sort these alphabetically: {word}, {word2}, {word3}.",
    "Tell me how {word} and {word2} are alike.",
)

SLOTS: dict[str, tuple[str, ...]] = {
    "subject": (
        "the ocean", "autumn leaves", "a lighthouse", "honeybees", "volcanoes", "the moon",
        "coffee", "trains", "rainforests", "glaciers", "owls", "the printing press",
        "electric cars", "city parks", "thunderstorms", "chess", "bread baking", "deserts",
        "coral reefs", "old libraries", "bicycles", "the night sky", "mountain lakes",
        "friendship", "lanterns", "migrating birds", "windmills", "snowfall", "tea ceremonies",
        "street markets", "jazz", "submarines", "maple trees", "a quiet morning", "rivers",
        "robots", "ancient Rome", "kites", "fireflies", "recycling",
    ),
    "audience": (
        "a ten-year-old", "a grandparent", "a new employee", "a curious teenager",
        "someone who has never heard of it", "a busy parent", "a history student",
        "a visiting tourist",
    ),
    "activity": (
        "a rainy Sunday", "a picnic in the park", "a birthday party", "a weekend hike",
        "a game night", "a cooking evening", "a beach day", "a road trip", "a garden party",
        "a museum visit", "a quiet evening at home", "a winter walk",
    ),
    "choice": (
        "working from home", "buying a used car", "learning the piano", "adopting a cat",
        "moving to a big city", "starting a vegetable garden", "taking a gap year",
        "running a marathon", "living without a car", "keeping a journal",
    ),
    "thing": (
        "a friendly robot dog", "a small bakery", "a bookshop cafe", "a hiking club",
        "a sailing boat", "a board game", "a podcast about science", "a pet turtle",
        "a neighbourhood newsletter", "a flower shop",
    ),
    "place": (
        "a busy train station", "a quiet beach at dawn", "a mountain village", "a night market",
        "an old castle", "a snowy forest", "a harbour town", "a sunflower field",
    ),
    "skill": (
        "public speaking", "cooking rice", "drawing faces", "remembering names",
        "writing emails", "playing guitar", "keeping plants alive", "saving money",
    ),
}

WORDS: tuple[str, ...] = tuple(sorted({
    word.removeprefix("a ").removeprefix("an ").removeprefix("the ")
    for slot in ("subject", "thing", "place") for word in SLOTS[slot]
}))
SLOTS["word"] = SLOTS["word2"] = SLOTS["word3"] = WORDS

NAMES: tuple[str, ...] = (
    "Alex", "Sam", "Maria", "Priya", "Tom", "Yuki", "Omar", "Lena", "Chen", "Fatima", "Jonas",
    "Ana", "Kofi", "Ines", "Ravi", "Mia", "Noah", "Sara", "Luca", "Aiko",
)

CONTEXTS: tuple[str, ...] = (
    "", "Keep it short. ", "Please be brief. ", "I'm curious. ", "Quick question: ",
    "For a school project: ", "Just for fun: ", "In simple words: ",
)

CONSTRAINTS: tuple[str, ...] = (
    "", *(f" Answer in about {n} words." for n in range(20, 100)),
    *(f" Use at most {n} words." for n in range(20, 100)),
)

MENTIONS: tuple[str, ...] = (
    "", *(f" Mention {word} somewhere." for word in WORDS),
    *(f" It's for my friend {name}." for name in NAMES),
)


def combinations() -> int:
    """How many distinct prompts the generator can write: what a cheater would have to
    precompute the genuine answers to."""
    tasks = 0
    for task in TASKS:
        count = 1
        for slot, words in SLOTS.items():
            if "{" + slot + "}" in task:
                count *= len(words)
        tasks += count
    return len(CONTEXTS) * tasks * len(CONSTRAINTS) * len(MENTIONS)


def fingerprint_prompts(
    secret: bytes, model: str, epoch: int, count: int = PROMPTS_PER_FINGERPRINT
) -> tuple[str, ...]:
    """``count`` distinct prompts for ``model``, determined by the secret and the epoch alone."""
    seed = hmac.new(secret, f"{model}\0{epoch}".encode(), hashlib.sha256).digest()
    rng = random.Random(seed)
    prompts: list[str] = []
    while len(prompts) < count:
        task = rng.choice(TASKS)
        filled = task.format(**{slot: rng.choice(words) for slot, words in SLOTS.items()})
        prompt = rng.choice(CONTEXTS) + filled + rng.choice(CONSTRAINTS) + rng.choice(MENTIONS)
        if prompt not in prompts:
            prompts.append(prompt)
    return tuple(prompts)
