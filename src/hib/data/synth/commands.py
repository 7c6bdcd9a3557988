"""Spoken phrasings of the 31 Fluent Speech Commands intents, modelled on FSC's own.

FSC's speakers read a fixed list of phrasings per intent, from full sentences ("Turn the
lights on in the kitchen") to fragments ("Kitchen lights on") and indirect ones ("It's too
cold", "I can't hear that"). These are written the same way: several wordings of each
action, with the object and location where FSC puts them, a second word for a room
("bathroom" for the washroom) and pairs that differ in one word (on/off, up/down,
louder/quieter), which are what make the task more than keyword spotting.
"""

from __future__ import annotations

from hib.data.fsc import INTENTS

ROOMS = {"kitchen": ("kitchen",), "bedroom": ("bedroom",), "washroom": ("washroom", "bathroom")}

_SWITCH = {"activate": "on", "deactivate": "off"}
_SWITCHED = ("turn {on} the {x}", "turn the {x} {on}", "switch {on} the {x}", "switch the {x} {on}")
_LIGHTS = (*_SWITCHED, "{x} {on}", "turn {on} the light", "switch {on} the light")
_LIGHTS_IN = (
    "turn {on} the lights in the {room}",
    "turn the lights {on} in the {room}",
    "switch {on} the lights in the {room}",
    "switch {on} the {room} lights",
    "turn {on} the {room} lights",
    "turn the {room} lights {on}",
    "{room} lights {on}",
    "lights {on} in the {room}",
)
_MUSIC = {
    "activate": (
        "play the music", "play music", "play some music", "put on some music", "start the music",
        "turn on the music", "music on", "resume the music",
    ),
    "deactivate": (
        "stop the music", "pause the music", "pause music", "turn off the music", "music off",
        "stop playing music", "switch off the music",
    ),
}  # fmt: skip
_VOLUME = {
    "increase": (
        "increase the volume", "turn up the volume", "turn the volume up", "volume up", "louder",
        "make it louder", "turn it up", "it's too quiet", "I can't hear that", "louder please",
        "raise the volume", "increase the sound",
    ),
    "decrease": (
        "decrease the volume", "turn down the volume", "turn the volume down", "volume down",
        "quieter", "make it quieter", "turn it down", "it's too loud", "that's too loud",
        "lower the volume", "reduce the volume", "decrease the sound",
    ),
}  # fmt: skip
_HEAT = {
    "increase": {"up": "up", "more": "increase", "warm": "warmer", "feel": "too cold"},
    "decrease": {"up": "down", "more": "decrease", "warm": "cooler", "feel": "too hot"},
}
_HEAT_ANYWHERE = (
    "{more} the heating", "turn {up} the heat", "turn the heat {up}", "heat {up}",
    "make it {warm}", "{more} the temperature", "turn the heating {up}", "it's {feel}",
)  # fmt: skip
_HEAT_EXTRA = {"increase": ("I'm cold", "raise the temperature"),
               "decrease": ("I'm too warm", "lower the temperature")}  # fmt: skip
_HEAT_IN = (
    "{more} the heating in the {room}", "turn {up} the heat in the {room}",
    "turn the heat {up} in the {room}", "{room} heat {up}", "make the {room} {warm}",
    "{more} the temperature in the {room}", "turn the {room} heating {up}",
    "it's {feel} in the {room}",
)  # fmt: skip
_LANGUAGE = (
    "change language", "change the language", "switch language", "switch the language",
    "language settings", "open the language settings", "I need a different language",
    "set a different language",
)  # fmt: skip
_LANGUAGE_TO = (
    "change the language to {lang}", "switch the language to {lang}",
    "set the language to {lang}", "switch to {lang}", "use {lang}", "set my device to {lang}",
    "I want to practice my {lang}, switch the language",
)  # fmt: skip
_THINGS = {
    "newspaper": ("my newspaper", "the newspaper"),
    "juice": ("some juice", "the juice", "a juice"),
    "socks": ("my socks", "the socks", "some socks"),
    "shoes": ("my shoes", "the shoes"),
}
_BRING = ("bring me {x}", "get me {x}", "fetch {x}", "go get {x}", "I need {x}", "bring {x}")


def phrasings(intent: tuple[str, str, str]) -> tuple[str, ...]:
    """Every wording of one (action, object, location) intent, lower case as spoken."""
    action, thing, room = intent
    if action in _SWITCH and thing == "lights" and room != "none":
        texts = [t.format(on=_SWITCH[action], room=r) for t in _LIGHTS_IN for r in ROOMS[room]]
    elif action in _SWITCH and thing == "lights":
        texts = [t.format(on=_SWITCH[action], x="lights") for t in _LIGHTS]
    elif action in _SWITCH and thing == "lamp":
        texts = [t.format(on=_SWITCH[action], x="lamp") for t in (*_SWITCHED, "{x} {on}")]
    elif action in _SWITCH:
        texts = list(_MUSIC[action])
    elif thing == "volume":
        texts = list(_VOLUME[action])
    elif thing == "heat" and room != "none":
        texts = [t.format(room=r, **_HEAT[action]) for t in _HEAT_IN for r in ROOMS[room]]
    elif thing == "heat":
        texts = [t.format(**_HEAT[action]) for t in _HEAT_ANYWHERE] + list(_HEAT_EXTRA[action])
    elif action == "change language" and thing == "none":
        texts = list(_LANGUAGE)
    elif action == "change language":
        texts = [t.format(lang=thing) for t in _LANGUAGE_TO]
    else:
        texts = [t.format(x=x) for t in _BRING for x in _THINGS[thing]]
    return tuple(texts)


PHRASINGS = {intent: phrasings(intent) for intent in INTENTS}
"""Intent -> its wordings; no wording belongs to two intents."""
