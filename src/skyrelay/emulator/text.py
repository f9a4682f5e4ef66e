"""Plausible English prose from a small grammar, cut into token-sized pieces.

A "token" here is one word (with its leading space) or one punctuation mark: close enough to a real BPE tokenizer
that usage counts, stream chunk counts and `max_tokens` truncation behave like a real model's, and cheap enough
for load tests. Everything is driven by the caller's `random.Random`, so the same seed gives the same prose.
"""

from __future__ import annotations

import random

_DETERMINERS = ("the", "a", "every", "this", "our", "each", "that", "one")
_ADJECTIVES = (
    "careful", "simple", "modern", "reliable", "quiet", "practical", "detailed", "useful", "steady", "clear",
    "small", "large", "early", "recent", "local", "shared", "flexible", "robust", "gentle", "bright", "patient",
    "efficient", "thoughtful", "familiar", "complete", "honest", "quick", "natural", "secure",
)
_NOUNS = (
    "team", "plan", "report", "system", "engineer", "garden", "library", "project", "customer", "river", "city",
    "question", "answer", "design", "budget", "schedule", "network", "teacher", "student", "market", "kitchen",
    "journey", "method", "service", "message", "window", "forest", "machine", "process", "document", "meeting",
    "picture", "story", "approach", "update", "result", "village", "review", "change", "idea",
)
_VERBS = (
    "improves", "supports", "explains", "follows", "reviews", "builds", "describes", "shapes", "protects",
    "reaches", "considers", "prepares", "finds", "shares", "tracks", "balances", "changes", "guides", "measures",
    "connects", "organizes", "simplifies", "checks", "delivers", "welcomes", "summarizes", "compares", "plans",
)
_ADVERBS = (
    "today", "quickly", "often", "carefully", "together", "again", "clearly", "slowly", "usually", "already",
    "gradually", "openly", "early", "later", "instead",
)
_TWO_WORDS = (
    "every day", "right away", "this week", "over time", "in practice", "at first", "for now", "by design",
    "with care", "in detail", "last year", "next month",
)
_THREE_WORDS = (
    "in the morning", "for the team", "with a plan", "after the meeting", "near the river", "across the city",
    "before the deadline", "during the review", "at the start", "without any delay", "for every customer",
    "through the process", "under clear rules", "within the budget", "along the way", "behind the scenes",
)
_SHORT = {
    1: ("Sure", "Certainly", "Okay", "Absolutely", "Indeed"),
    2: ("Sounds good", "Thank you", "Good question", "Of course", "Happy to"),
    3: ("That makes sense", "I can help", "Here it is", "Let me explain", "That is right"),
    4: ("Here is the answer", "This should help you", "I hope this helps", "Let me walk through"),
}


def sentence_words(rng: random.Random, n: int) -> list[str]:
    """Exactly `n` words forming one sentence (without its final period)."""
    if n <= 4:
        return rng.choice(_SHORT[max(n, 1)]).split()
    # Core clause: determiner [adjective] noun verb determiner [adjective] noun -> 5 to 7 words.
    core_len = min(n, 7) if n < 9 else rng.randint(5, 7)
    extra_adjs = core_len - 5
    subject = [rng.choice(_DETERMINERS)] + ([rng.choice(_ADJECTIVES)] if extra_adjs >= 1 else [])
    subject.append(rng.choice(_NOUNS))
    obj = [rng.choice(_DETERMINERS)] + ([rng.choice(_ADJECTIVES)] if extra_adjs >= 2 else [])
    obj.append(rng.choice(_NOUNS))
    words = subject + [rng.choice(_VERBS)] + obj
    remaining = n - len(words)
    used: set[str] = set()
    while remaining > 0:  # pad with phrases of 3, 2 or 1 words so the count is exact
        size = 3 if remaining >= 3 and rng.random() < 0.6 else (2 if remaining >= 2 else 1)
        pool = _THREE_WORDS if size == 3 else _TWO_WORDS if size == 2 else _ADVERBS
        phrase = rng.choice(pool)
        if phrase in used:  # one retry keeps "next month next month" rare without unbounded loops
            phrase = rng.choice(pool)
        used.add(phrase)
        words += phrase.split()
        remaining -= size
    for i in range(len(words) - 1):
        if words[i] == "a" and _vowel_sound(words[i + 1]):
            words[i] = "an"
    words[0] = words[0].capitalize()
    return words


def _vowel_sound(word: str) -> bool:
    # "a useful", "a unique", "a one-off" sound a consonant though they start with a vowel letter
    return word[0] in "aeiou" and not word.startswith(("use", "usu", "uni", "eu", "one"))


def prose_tokens(rng: random.Random, n_tokens: int) -> list[str]:
    """`n_tokens` token strings whose concatenation reads as whole sentences."""
    tokens: list[str] = []
    remaining = n_tokens
    while remaining > 0:
        length = remaining if remaining <= 16 else rng.randint(8, 14)  # tokens in this sentence, period included
        words = sentence_words(rng, length - 1 if length > 1 else 1)
        for word in words:
            tokens.append(word if not tokens else " " + word)
        if length > 1:
            tokens.append(".")
        remaining -= length
    return tokens


def some_words(rng: random.Random, count: int) -> str:
    """A short lower-case phrase, for string values in generated tool arguments."""
    pool = _ADJECTIVES + _NOUNS
    return " ".join(rng.choice(pool) for _ in range(max(count, 1)))
