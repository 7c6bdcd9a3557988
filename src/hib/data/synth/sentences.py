"""English sentences for the synthesized ASR corpus, from a small hand-written grammar.

Why templates, not a book: no package installable here ships public-domain prose offline
(nltk's corpora and the Gutenberg clients download at run time), and a grammar controls what
matters for a recogniser test: everyday words that both engines pronounce, grammatical
sentences with natural word order (Whisper's decoder leans on its language model), clause
counts that give 2-12 s utterances, some numbers and names (where the normaliser and the
spelling of names are exercised), and a space of millions of sentences, so the splits share
no sentence by accident. Every draw comes from the generator passed in.
"""

from __future__ import annotations

import numpy as np

# fmt: off
NAMES = ("anna", "john", "mary", "david", "sarah", "peter", "emma", "james", "lucy", "thomas")
PEOPLE = (
    "man", "woman", "boy", "girl", "teacher", "doctor", "farmer", "driver", "baker", "neighbour",
    "captain", "student", "nurse", "child", "stranger", "waiter", "painter", "soldier",
)
KIN = ("sister", "brother", "mother", "father", "friend", "uncle", "aunt", "cousin", "son")
PERSON_ADJ = ("old", "young", "tall", "quiet", "tired", "kind", "little", "angry", "clever")
THINGS = (
    "door", "box", "letter", "chair", "window", "coat", "basket", "bottle", "book", "table",
    "ladder", "bicycle", "lamp", "map", "key", "bag", "cup", "picture", "blanket", "boat",
    "knife", "wheel", "clock", "garden gate", "kitchen floor", "newspaper", "suitcase",
)
THING_ADJ = (
    "red", "heavy", "broken", "old", "small", "wooden", "new", "dirty", "green", "empty",
    "large", "blue", "strange", "warm", "little", "yellow", "bright",
)
FOOD = ("bread", "milk", "apples", "soup", "cheese", "eggs", "tea", "coffee", "fish", "rice")
TRANSITIVE = (
    "found", "carried", "opened", "painted", "cleaned", "bought", "sold", "lost", "fixed",
    "watched", "brought", "washed", "picked up", "put away", "looked at", "moved", "kept",
    "left", "needed", "took", "dropped", "borrowed", "showed us", "hid", "closed", "checked",
)
EATING = ("ate", "cooked", "bought", "shared", "wanted", "asked for", "made", "forgot")
INTRANSITIVE = (
    "walked home", "smiled", "went to sleep", "waited for a long time", "laughed", "stayed inside",
    "came back", "sat down", "started to sing", "ran to the door", "looked around", "felt better",
    "stopped talking", "went out", "fell asleep", "worked all day", "answered the phone",
    "turned off the light", "called a friend", "got up early", "listened carefully",
)
PLACES = (
    "in the garden", "near the river", "at the station", "behind the house", "on the table",
    "by the window", "in the village", "at the market", "under the bridge", "across the street",
    "in the kitchen", "on the hill", "at school", "in the old church", "near the harbour",
    "outside the shop", "in the forest", "at the end of the road", "on the train",
)
TIMES = (
    "yesterday", "this morning", "last night", "on sunday", "after dinner", "every evening",
    "in the afternoon", "early in the morning", "last summer", "before lunch", "on monday",
    "at the weekend", "after the storm", "that winter", "later that day",
)
COUNTS = ("two", "three", "four", "five", "six", "seven", "eight", "ten", "twelve", "twenty")
HOURS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven")
STATES = (
    "tired", "hungry", "happy", "late", "cold", "worried", "busy", "sure", "ready", "afraid",
    "in a hurry", "very quiet", "a little sad",
)
WEATHER = ("cold", "warm", "windy", "dark", "quiet", "sunny", "wet", "foggy", "bright")
LINKS = ("and then", "but", "because", "so", "while", "before", "after", "when", "and")
PRONOUNS = (("he", "was"), ("she", "was"), ("they", "were"), ("we", "were"), ("it", "was"))
# fmt: on


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return str(words[int(rng.integers(len(words)))])


def person(rng: np.random.Generator) -> str:
    roll = rng.random()
    if roll < 0.25:
        return _pick(rng, NAMES)
    if roll < 0.55:
        return f"{_pick(rng, ('my', 'her', 'his', 'our', 'their'))} {_pick(rng, KIN)}"
    adjective = f"{_pick(rng, PERSON_ADJ)} " if rng.random() < 0.6 else ""
    return f"the {adjective}{_pick(rng, PEOPLE)}"


def plural(noun: str) -> str:
    if noun.endswith("fe"):
        return noun[:-2] + "ves"
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def thing(rng: np.random.Generator) -> str:
    roll = rng.random()
    if roll < 0.2:
        return f"{_pick(rng, COUNTS)} {_pick(rng, THING_ADJ)} {plural(_pick(rng, THINGS))}"
    adjective = f"{_pick(rng, THING_ADJ)} " if rng.random() < 0.7 else ""
    return f"{_pick(rng, ('the', 'a', 'that', 'her', 'his'))} {adjective}{_pick(rng, THINGS)}"


def time(rng: np.random.Generator) -> str:
    if rng.random() < 0.2:
        return f"at {_pick(rng, HOURS)} o'clock"
    return _pick(rng, TIMES)


def clause(rng: np.random.Generator) -> str:
    """One clause: an action, a meal, a movement, or a state."""
    roll = rng.random()
    if roll < 0.4:
        parts = [person(rng), _pick(rng, TRANSITIVE), thing(rng)]
    elif roll < 0.55:
        parts = [person(rng), _pick(rng, EATING), f"some {_pick(rng, FOOD)}"]
    elif roll < 0.8:
        parts = [person(rng), _pick(rng, INTRANSITIVE)]
    elif roll < 0.9:
        pronoun, be = PRONOUNS[int(rng.integers(len(PRONOUNS)))]
        return f"{pronoun} {be} {_pick(rng, STATES)}"
    else:
        first, second = rng.choice(len(WEATHER), size=2, replace=False)
        return f"it was {WEATHER[first]} and {WEATHER[second]} {time(rng)}"
    if rng.random() < 0.5:
        parts.append(_pick(rng, PLACES))
    if rng.random() < 0.35:
        parts.append(time(rng))
    return " ".join(parts)


def sentence(rng: np.random.Generator, min_words: int = 6, max_words: int = 26) -> str:
    """Clauses joined by conjunctions until `min_words`; lower case, no punctuation.

    A sentence that overshoots `max_words` is drawn again (from the same generator).
    """
    while True:
        words = clause(rng)
        while len(words.split()) < min_words:
            words += f" {_pick(rng, LINKS)} {clause(rng)}"
        if len(words.split()) <= max_words:
            return words
