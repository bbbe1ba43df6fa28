"""Make ``data/tuning/corpus.jsonl``: a small, programmatically generated instruction-tuning corpus.

The corpus teaches a small pre-trained model (Gemma 3 270M base, LoRA, ~1 epoch on CPU) to
follow an instruction: answer directly and briefly, then stop (the trainer appends EOS), give a
list for list tasks, one label for classification, the right number for easy arithmetic, code
in a fence for coding tasks, only the translation for translation tasks.

Ten task types, 1,800 records: 220 each of ``rewriting``, ``summarising``, ``math``, ``translation``
and ``factual_qa`` (the types the first tuned model failed most often; ``TASK_COUNTS``), 140 each of
``open_writing``, ``classification``, ``extraction``, ``brainstorming`` and ``coding`` (``--per-task``);
``--task-count TASK=N`` overrides one task. Records are generated until each count is reached after
de-duplication and decontamination. Each task has several paraphrase templates for its instruction,
and the weaker types cover many sub-types:

* ``rewriting``: spelling (one typo or several), capitalisation, upper case, formal tone, past /
  present / future ("will") tense, replacing a given word by another given word, negation,
  singular <-> plural, change of person ("I" -> "we", "she", ...), shortening wordy sentences,
  reordering (time phrase first, unscrambling words), statement -> yes/no question. Every response
  is computed from the input and always differs from it.
* ``math``: one- and two-step word problems and bare arithmetic, with many small-number subtractions
  and exact divisions and two-digit additions; the response is ``<working> = N. The answer is N.``
  and every working is re-evaluated and checked against N (``_ans``).
* ``factual_qa``: capitals, science facts, WordNet definitions and a general-knowledge table
  (animals, the body, planets, geography, calendar and numbers, materials, everyday science), each
  answered in a full short sentence that does not repeat the question.
* ``translation``: phrases and single words (animals, colours, numbers, food, family, common verbs,
  greetings), English -> French/Spanish/German, the response only the translation.
* ``summarising``: abstractive one-sentence summaries (reworded, shorter than the passage's
  sentences) of emails, reviews, match reports, forecasts, studies, notices, recipes, stories,
  council decisions and health advice.

Nothing of the held-out set is used: not its facts, words, phrases, sentences or number pairs
(``HELD_OUT_PAIRS``, ``_HELD_OUT_TRANSLATIONS``).
Record format (read by :func:`tuneshift.tuning.corpus.load_corpus`), one JSON object a line::

    {"id": "<task>_<nnnn>", "task": "<task>", "instruction": "...", "input": "..."?, "response": "..."}

Sources:

* Hand-written in this script: every template, word bank and phrase table -- names, cities,
  notes, invitations, place descriptions, slogans, review/headline/summary paragraph templates,
  brainstorming lists, arithmetic word-problem templates, the Python function table, the
  English->French/Spanish/German phrase and word tables, capital cities, science facts, the
  general-knowledge table, the rewriting sentence frames (verbs, nouns, persons, word swaps) and
  ``HAND_SENTENCES``, and the summarising passage templates.
* Princeton WordNet 3.0 (Debian package ``wordnet-base``, read from ``/usr/share/wordnet`` with
  NLTK's ``WordNetCorpusReader``, no NLTK download): example sentences (``Synset.examples()``)
  for spelling correction (typos injected programmatically; with ``HAND_SENTENCES``), word
  replacement, capitalisation and
  question/statement classification; glosses (``Synset.definition()``) of a hand-written list
  of common words for definition questions. ``wordfreq`` (a tuneshift dependency) keeps only
  example sentences made of common words.

Decontamination: a record is dropped (and counted) when its ``instruction + input + response``
shares a word 8-gram (:func:`tuneshift.tuning.corpus.word_ngrams`) with any evaluation text:
every ``prompt`` of ``tuneshift/data/bundled/demo_prompts.jsonl``, every ``instruction`` (+ ``input``)
of ``tuneshift/data/bundled/following_eval.jsonl`` (the held-out instruction-following set), and every
prompt of the paper's ``FinalDataset.tsv`` when found (``--paper-tsv``, else
``$TUNESHIFT_PAPER_DATA/datasets/FinalDataset.tsv``, else (this repository's own layout)
``../shared/paper/datasets/FinalDataset.tsv`` relative to the repository, else
``/work/shared/paper/datasets/FinalDataset.tsv``). Identical records are de-duplicated.

Deterministic: one ``random.Random(seed)`` (default seed 20240501); running it twice gives
byte-identical output. Prints per task: generated, duplicates, dropped for overlap, written
(``--show-overlaps`` prints the dropped records).

Run (needs ``apt-get install wordnet-base``; nltk and wordfreq are in the venv)::

    .venv/bin/python scripts/make_tuning_corpus.py [--out data/tuning/corpus.jsonl] [--seed 20240501]
        [--per-task 140] [--task-count TASK=N ...] [--paper-tsv PATH] [--show-overlaps]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tuneshift.tuning.corpus import user_text, word_ngrams  # noqa: E402

WORDNET_DIR = "/usr/share/wordnet"
DEFAULT_SEED = 20240501
TASKS = [
    "open_writing",
    "rewriting",
    "summarising",
    "classification",
    "extraction",
    "brainstorming",
    "math",
    "coding",
    "translation",
    "factual_qa",
]

# ---------------------------------------------------------------------------------------------
# Shared word banks (hand-written)
# ---------------------------------------------------------------------------------------------

NAMES = [
    "Anna",
    "Ben",
    "Carlos",
    "Diana",
    "Ella",
    "Farid",
    "Grace",
    "Hugo",
    "Isla",
    "Jack",
    "Kofi",
    "Lena",
    "Marco",
    "Nadia",
    "Omar",
    "Paula",
    "Rosa",
    "Sam",
    "Tariq",
    "Victor",
    "Wendy",
    "Yusuf",
    "Zoe",
    "Liam",
    "Sofia",
    "Noah",
    "Amara",
    "Leo",
    "Hana",
    "Ivan",
    "Julia",
    "Kai",
    "Maya",
    "Nina",
    "Oscar",
    "Ruby",
    "Theo",
    "Ada",
    "Felix",
    "Clara",
]
SURNAMES = [
    "Smith",
    "Garcia",
    "Khan",
    "Novak",
    "Okafor",
    "Larsen",
    "Rossi",
    "Tanaka",
    "Brown",
    "Silva",
    "Patel",
    "Moreau",
    "Schmidt",
    "Kowalski",
    "Nguyen",
    "Haddad",
    "Ortiz",
    "Murphy",
    "Jensen",
    "Costa",
    "Mensah",
    "Fischer",
]
CITIES = [
    "Paris",
    "Lisbon",
    "Nairobi",
    "Oslo",
    "Lima",
    "Dublin",
    "Cairo",
    "Seoul",
    "Prague",
    "Sydney",
    "Chicago",
    "Mumbai",
    "Bogota",
    "Warsaw",
    "Athens",
    "Montreal",
    "Cape Town",
    "Istanbul",
    "Bangkok",
    "Edinburgh",
    "Hamburg",
    "Osaka",
    "Denver",
    "Manila",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
TIMES = ["9 am", "10 am", "11 am", "noon", "2 pm", "3 pm", "4 pm", "5 pm", "6 pm", "7 pm"]
NUM_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def possessive(name: str) -> str:
    return name + "'" if name.endswith("s") else name + "'s"


def pick(rng: random.Random, seq):
    return seq[rng.randrange(len(seq))]


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


# ---------------------------------------------------------------------------------------------
# open_writing
# ---------------------------------------------------------------------------------------------

NOTE_SITUATIONS = [
    (
        ["saying you will be home late tonight", "to let them know you will be late home this evening"],
        "I will be home late tonight because {late}. Please eat without me, and I will warm up my dinner when I get back.",
        {
            "late": [
                "my train is delayed",
                "I have to finish a report at work",
                "the traffic is very heavy",
                "my evening class runs until eight",
            ]
        },
    ),
    (
        ["asking to borrow their {item}", "asking if you can borrow their {item} on {day}"],
        "Could I borrow your {item} on {day}? I need it {use}. I will bring it back the same evening and take good care of it.",
        {
            "item|use": [
                ("ladder", "to clean the gutters"),
                ("bicycle", "to ride to the market"),
                ("drill", "to put up a shelf"),
                ("tent", "for a weekend camping trip"),
                ("lawn mower", "to cut the grass"),
                ("camera", "for my cousin's wedding"),
            ]
        },
    ),
    (
        ["thanking them for the {gift}", "to thank them for the {gift} they gave you"],
        "Thank you so much for the {gift}. {gline} It was very kind of you to think of me.",
        {
            "gift|gline": [
                ("scarf", "It is warm and soft, and I have worn it every day this week."),
                ("cookbook", "I have already tried two of the recipes, and both were delicious."),
                ("mug", "I drink my tea from it every morning."),
                ("board game", "We played it with the whole family last night and laughed a lot."),
                ("flowers", "They look lovely on my kitchen table."),
                ("novel", "I started reading it last night and could not put it down."),
            ]
        },
    ),
    (
        ["reminding them about the meeting on {day}", "as a reminder of {day}'s meeting"],
        "Just a reminder that our meeting is on {day} at {time} in {room}. Please bring {thing}. See you there!",
        {
            "room": ["Room 4", "the small conference room", "the library", "the main office"],
            "thing": ["your notes from last week", "a copy of the budget", "your laptop", "any questions you have"],
        },
    ),
    (
        ["apologising for missing their party", "to say sorry for not coming to their party"],
        "I am sorry I missed your party on {day}. {miss} I hope you had a wonderful evening, and I would love to hear all about it soon.",
        {
            "miss": [
                "I had a bad cold and stayed in bed.",
                "My flight was cancelled and I got home very late.",
                "I had to work an extra shift.",
                "My car broke down on the way.",
            ]
        },
    ),
    (
        ["congratulating them on their new job as a {job}", "to congratulate them on becoming a {job}"],
        "Congratulations on your new job as a {job}! You worked hard for this, and you really deserve it. I wish you a great first week.",
        {"job": ["nurse", "teacher", "chef", "pilot", "librarian", "web designer", "firefighter", "lawyer"]},
    ),
    (
        ["welcoming them to the street", "to welcome them as new neighbours"],
        "Welcome to the street! We live at number {num}. If you need anything, such as {help}, just knock on our door.",
        {
            "num": ["4", "12", "17", "23", "31"],
            "help": [
                "a ladder or some tools",
                "advice about the bin days",
                "the name of a good plumber",
                "a cup of sugar",
            ],
        },
    ),
    (
        ["wishing them a quick recovery", "to wish them well while they are ill"],
        "I was sorry to hear that you are unwell. Rest, drink plenty of fluids and do not worry about {worry}. We all miss you and hope you feel better soon.",
        {"worry": ["work", "the garden", "the school project", "the football team"]},
    ),
]
SIGNOFFS = ["Best wishes", "Thanks", "See you soon", "Love", "Kind regards", "Cheers"]
NOTE_TEMPLATES = [
    "Write a short note to {to} {purpose}.",
    "Write a brief note to {to} {purpose}.",
    "Draft a quick message to {to} {purpose}.",
    "Can you write a short message to {to} {purpose}?",
    "Compose a two- or three-sentence note to {to} {purpose}.",
]

INVITATIONS = [
    ("a picnic in the park", "in Riverside Park", "Bring a blanket and your favourite snack."),
    ("a board game evening", "at my flat", "There will be snacks, drinks and plenty of games."),
    ("my graduation party", "at my parents' house", "There will be food, music and cake."),
    ("a housewarming party", "at our new home on Hill Road", "Come and see the new place and meet the neighbours."),
    ("a movie night", "in my living room", "I will make popcorn, so just bring yourself."),
    ("a summer barbecue", "in our back garden", "We will grill burgers and vegetables."),
    (
        "a farewell lunch for Ms Silva",
        "at the Green Olive restaurant",
        "Let's give her a warm send-off before she retires.",
    ),
    ("a charity quiz night", "at the community hall", "Teams of four are welcome, and prizes go to the top three."),
]
INVITE_TEMPLATES = [
    "Write a short invitation to {event} on {day} at {time}.",
    "Draft a brief invitation for {event}. It is on {day} at {time}.",
    "Create an invitation message: {event}, {day}, {time}.",
    "Write an invitation asking friends to come to {event} on {day} at {time}.",
]

PLACES = {
    "a beach on a summer day": [
        [
            "The beach stretches for miles under a bright blue sky.",
            "Golden sand glitters in the hot afternoon sun.",
            "The beach is crowded with families, towels and colourful umbrellas.",
        ],
        [
            "Waves roll gently onto the shore while gulls call overhead.",
            "Children build sandcastles near the water's edge.",
            "The salty breeze carries the smell of sun cream and grilled corn.",
        ],
        [
            "It is the perfect place to forget about work for a while.",
            "As evening comes, the sky turns orange and pink.",
            "Everyone seems relaxed and happy.",
        ],
    ],
    "a forest in autumn": [
        [
            "The forest glows with red, orange and yellow leaves.",
            "Tall oaks and maples stand in the cool autumn air.",
            "A thick carpet of fallen leaves covers the path.",
        ],
        [
            "Leaves crunch under every step, and squirrels hurry to hide their nuts.",
            "Mushrooms push up through the damp earth.",
            "A light mist drifts between the trunks in the morning.",
        ],
        [
            "It is quiet, calm and full of colour.",
            "The air smells of wet wood and earth.",
            "It feels like the whole forest is getting ready for winter.",
        ],
    ],
    "a busy market": [
        [
            "The market is packed with stalls selling fruit, fish, spices and clothes.",
            "Rows of bright awnings fill the town square.",
            "Crowds of shoppers squeeze between the stalls.",
        ],
        [
            "Sellers shout out their prices, and customers bargain loudly.",
            "The smell of fresh bread and roasting nuts fills the air.",
            "Piles of oranges, peppers and melons shine in the sun.",
        ],
        [
            "It is noisy, colourful and full of life.",
            "There is something new to see at every corner.",
            "Nobody leaves without a full bag.",
        ],
    ],
    "a small café in the morning": [
        [
            "The little café is warm and smells of fresh coffee.",
            "Sunlight falls across the wooden tables of the small café.",
            "The café has only six tables and a long counter.",
        ],
        [
            "The coffee machine hisses while the owner greets regular customers by name.",
            "People read newspapers and chat quietly over their croissants.",
            "A tray of warm pastries sits next to the till.",
        ],
        [
            "It is a peaceful place to start the day.",
            "Many customers stay much longer than they planned.",
            "It feels more like a living room than a shop.",
        ],
    ],
    "a snowy mountain village": [
        [
            "The village sits high in the mountains under a thick blanket of snow.",
            "Wooden houses with steep roofs line the narrow street.",
            "Snow-covered peaks rise all around the tiny village.",
        ],
        [
            "Smoke curls from the chimneys, and lights glow in every window.",
            "Children pull sledges down the main road.",
            "The only sound is the crunch of boots in the snow.",
        ],
        [
            "It looks like a picture on a holiday card.",
            "The air is cold, clean and very still.",
            "Visitors come here to ski and to rest.",
        ],
    ],
    "a quiet garden at night": [
        [
            "The garden is dark and still under a full moon.",
            "Silver moonlight falls across the lawn and the flower beds.",
            "The garden is quiet now that the day is over.",
        ],
        [
            "Crickets chirp in the grass, and a cool breeze moves the leaves.",
            "The smell of roses and damp soil hangs in the air.",
            "An owl hoots somewhere in the trees.",
        ],
        [
            "It is the most peaceful time of the day.",
            "Everything feels calm and safe.",
            "It is a lovely place to sit and think.",
        ],
    ],
    "a school playground at break time": [
        [
            "The playground is full of children as soon as the bell rings.",
            "The playground fills with noise the moment break begins.",
            "Hundreds of pupils rush out into the playground.",
        ],
        [
            "Some play football, others skip rope or chase each other.",
            "Groups of friends share snacks on the benches.",
            "A teacher with a whistle watches from the corner.",
        ],
        [
            "The air is full of shouting and laughter.",
            "For fifteen minutes, nobody thinks about lessons.",
            "When the bell rings again, the playground is suddenly empty.",
        ],
    ],
    "a kitchen during a family dinner": [
        [
            "The kitchen is warm and crowded with family.",
            "Pots bubble on every ring of the cooker.",
            "The long kitchen table is set for ten people.",
        ],
        [
            "Everyone talks at once while the dishes are passed around.",
            "The smell of roast potatoes and garlic fills the room.",
            "Grandma stirs the soup and tells everyone to sit down.",
        ],
        [
            "It is loud, busy and full of love.",
            "Nobody is in a hurry to leave the table.",
            "It is the best evening of the week.",
        ],
    ],
    "an old lighthouse by the sea": [
        [
            "The old lighthouse stands alone on a rocky point.",
            "The white lighthouse rises above the grey sea.",
            "The lighthouse is tall, narrow and painted with red stripes.",
        ],
        [
            "Waves crash against the rocks below it.",
            "Its lamp sweeps across the water every few seconds.",
            "Seabirds nest on the ledges of the cliff beside it.",
        ],
        [
            "It has warned ships of danger for many years.",
            "It looks lonely but strong.",
            "Visitors climb its spiral stairs for the view.",
        ],
    ],
    "a city street in the rain": [
        [
            "Rain pours down on the busy city street.",
            "The street shines with puddles and reflected lights.",
            "Umbrellas of every colour fill the pavement.",
        ],
        [
            "Cars splash through the water, and buses hiss to a stop.",
            "People hurry into shops and doorways to stay dry.",
            "Water gushes from the gutters into the drains.",
        ],
        [
            "The whole city seems to move a little faster.",
            "It is grey and wet, but full of movement.",
            "Soon the cafés fill up with damp customers.",
        ],
    ],
}
PLACE_TEMPLATES = [
    "Describe {p} in one paragraph.",
    "Write a short paragraph describing {p}.",
    "In three sentences, describe {p}.",
    "Give me a brief description of {p}.",
    "Write a few sentences that describe {p}.",
]

SLOGANS = {
    "a bicycle shop": ["Pedal further, smile wider.", "Two wheels, endless adventures.", "Ride better with us."],
    "a coffee shop": [
        "Great days start with great coffee.",
        "Your daily cup of happiness.",
        "Fresh beans, warm smiles.",
    ],
    "a toothpaste brand": ["Smile brighter every day.", "Fresh breath, strong teeth.", "Clean teeth, confident smile."],
    "a running shoe": ["Run lighter, run longer.", "Every step counts.", "Built for the extra mile."],
    "a pizza restaurant": [
        "Hot, fresh and made for sharing.",
        "Every slice made with love.",
        "Pizza the way it should be.",
    ],
    "a gym": ["Stronger every day.", "Your goals, our mission.", "Sweat today, shine tomorrow."],
    "an ice cream shop": ["Life is better with a scoop.", "Cool treats for warm hearts.", "Happiness in every cone."],
    "a bookshop": ["Find your next favourite story.", "Every book is a new world.", "Read more, live more."],
    "a cleaning service": [
        "We clean, you relax.",
        "Sparkling homes, happy people.",
        "A cleaner home without the work.",
    ],
    "a solar panel company": [
        "Power your home with sunshine.",
        "Clean energy from your own roof.",
        "Let the sun pay your bills.",
    ],
    "a dog-walking service": ["Happy dogs, happy owners.", "Every dog deserves a good walk.", "We walk, they wag."],
    "a recycling campaign": [
        "Sort it, don't waste it.",
        "Give your rubbish a second life.",
        "Recycle today for a cleaner tomorrow.",
    ],
}
SLOGAN_TEMPLATES = [
    "Write a slogan for {x}.",
    "Write a catchy slogan for {x}.",
    "Suggest a short slogan for {x}.",
    "Give me a one-line slogan for {x}.",
    "Create a motto for {x}. Keep it short.",
]

FORECASTS = [
    ("sunny", "It will be sunny all day, with a high of {t} degrees.", "Don't forget your sunglasses and sun cream."),
    ("rainy", "Expect steady rain for most of the day and a high of {t} degrees.", "Take an umbrella if you go out."),
    (
        "windy",
        "Strong winds will blow all day, with a high of {t} degrees.",
        "Hold on to your hat and secure loose objects outside.",
    ),
    (
        "snowy",
        "Snow will fall through the morning, and the high will be only {t} degrees.",
        "Drive carefully and wear warm boots.",
    ),
    ("cloudy", "Grey clouds will cover the sky, with a high of {t} degrees.", "It is a good day for a museum visit."),
    (
        "stormy",
        "Thunderstorms are likely in the afternoon, with a high of {t} degrees.",
        "Stay indoors if you hear thunder.",
    ),
]
FORECAST_TEMPS = {
    "sunny": (22, 34),
    "rainy": (8, 18),
    "windy": (6, 16),
    "snowy": (-6, 1),
    "cloudy": (10, 19),
    "stormy": (15, 26),
}
FORECAST_TEMPLATES = [
    "Write a short weather forecast for {city} for tomorrow. It will be {cond}.",
    "Write a two-sentence weather report for {city}: tomorrow will be {cond}.",
    "Give a brief forecast for {city} tomorrow. The weather will be {cond}.",
]

BIO_JOBS = [
    "nurse",
    "teacher",
    "baker",
    "engineer",
    "photographer",
    "gardener",
    "journalist",
    "architect",
    "vet",
    "chef",
]
BIO_HOBBIES = [
    "hiking",
    "painting",
    "playing chess",
    "cooking for friends",
    "swimming",
    "reading detective novels",
    "playing the guitar",
    "growing tomatoes",
    "running marathons",
    "birdwatching",
]
BIO_TEMPLATES = [
    "Write a one-sentence introduction of {name}, a {job} from {city} who enjoys {hobby}.",
    "Write a short bio: {name}, {job}, lives in {city}, hobby: {hobby}.",
    "Introduce {name} in one sentence. {name} is a {job} in {city} and likes {hobby}.",
]


def _fill_situation(rng, slots):
    vals = {}
    for key, options in slots.items():
        choice = pick(rng, options)
        if "|" in key:
            for k, v in zip(key.split("|"), choice):
                vals[k] = v
        else:
            vals[key] = choice
    return vals


def gen_open_writing(rng: random.Random, ctx) -> tuple[str, str | None, str]:
    r = rng.random()
    if r < 0.36:
        purposes, body, slots = pick(rng, NOTE_SITUATIONS)
        vals = _fill_situation(rng, slots)
        vals.setdefault("day", pick(rng, DAYS))
        vals.setdefault("time", pick(rng, TIMES))
        to, sender = rng.sample(NAMES, 2)
        purpose = pick(rng, purposes).format(**vals)
        ins = pick(rng, NOTE_TEMPLATES).format(to=to, purpose=purpose)
        text = body.format(**vals)
        if rng.random() < 0.5:
            resp = f"Hi {to},\n\n{text}\n\n{pick(rng, SIGNOFFS)},\n{sender}"
        else:
            resp = f"Dear {to},\n\n{text}\n\n{pick(rng, SIGNOFFS)},\n{sender}"
        return ins, None, resp
    if r < 0.52:
        event, place, extra = pick(rng, INVITATIONS)
        day, time = pick(rng, DAYS), pick(rng, TIMES)
        rsvp = DAYS[(DAYS.index(day) - 2) % 7]
        ins = pick(rng, INVITE_TEMPLATES).format(event=event, day=day, time=time)
        resp = f"You are invited to {event} on {day} at {time} {place}! {extra} Please let me know by {rsvp} if you can come."
        return ins, None, resp
    if r < 0.74:
        p = pick(rng, sorted(PLACES))
        sentences = [pick(rng, slot) for slot in PLACES[p]]
        return pick(rng, PLACE_TEMPLATES).format(p=p), None, " ".join(sentences)
    if r < 0.84:
        x = pick(rng, sorted(SLOGANS))
        return pick(rng, SLOGAN_TEMPLATES).format(x=x), None, pick(rng, SLOGANS[x])
    if r < 0.93:
        cond, first, advice = pick(rng, FORECASTS)
        city = pick(rng, CITIES)
        lo, hi = FORECAST_TEMPS[cond]
        t = rng.randint(lo, hi)
        ins = pick(rng, FORECAST_TEMPLATES).format(city=city, cond=cond)
        return ins, None, f"Tomorrow in {city}: {first.format(t=t)} {advice}"
    name, job, city, hobby = pick(rng, NAMES), pick(rng, BIO_JOBS), pick(rng, CITIES), pick(rng, BIO_HOBBIES)
    ins = pick(rng, BIO_TEMPLATES).format(name=name, job=job, city=city, hobby=hobby)
    resp = f"{name} is {article(job)} {job} from {city} who loves {hobby} in their free time."
    return ins, None, resp


# ---------------------------------------------------------------------------------------------
# rewriting
# ---------------------------------------------------------------------------------------------

SPELL_TEMPLATES = [
    "Correct the spelling mistakes in this sentence.",
    "Fix the typos in the following sentence.",
    "This sentence has some spelling errors. Write it out correctly.",
    "Rewrite the sentence with correct spelling.",
    "Proofread this sentence and correct the spelling.",
    "Fix the spelling.",
]
CAPS_TEMPLATES = [
    "Add the missing capital letters and the full stop to this sentence.",
    "Rewrite this sentence with correct capitalisation and punctuation.",
    "Capitalise this sentence properly and end it with a full stop.",
    "Fix the capital letters and punctuation in the following sentence.",
]
UPPER_TEMPLATES = [
    "Rewrite this sentence in capital letters.",
    "Convert the following text to upper case.",
    "Write this sentence in all caps.",
]
FORMAL_PAIRS = [
    (
        "hey {name}, can u send me the {doc} asap?",
        "Hello {name}, could you please send me the {doc} as soon as possible?",
    ),
    ("sorry, gonna be late today!!", "I apologise, but I will be late today."),
    ("thx for the help with the {task}, u rock", "Thank you very much for your help with the {task}."),
    (
        "can't make the meeting on {day}, something came up",
        "Unfortunately, I will not be able to attend the meeting on {day} because something has come up.",
    ),
    ("need the {doc} by {day}, ok?", "I would be grateful if you could send me the {doc} by {day}."),
    ("wanna grab lunch on {day}?", "Would you like to have lunch together on {day}?"),
    ("the {thing} is broken again, pls fix it", "The {thing} is broken again. Could you please have it repaired?"),
    (
        "no clue what the {doc} is about, can u explain?",
        "I do not understand the {doc}. Could you please explain it to me?",
    ),
    ("got ur email, will look at it later", "Thank you for your email. I will review it later today."),
    ("we're out of {supply}, someone buy more", "We have run out of {supply}. Could someone please buy more?"),
    ("yeah {day} works for me, see ya", "Yes, {day} is convenient for me. I look forward to seeing you."),
    ("dunno if i can finish the {doc} today", "I am not sure whether I will be able to finish the {doc} today."),
]
FORMAL_SLOTS = {
    "doc": ["report", "slides", "invoice", "budget", "contract", "schedule", "spreadsheet"],
    "task": ["move", "presentation", "spreadsheet", "training session"],
    "thing": ["printer", "coffee machine", "projector", "door lock", "air conditioner"],
    "supply": ["paper", "coffee", "printer ink", "milk", "envelopes"],
}
FORMAL_TEMPLATES = [
    "Rewrite this message in a formal tone.",
    "Make the following sentence more formal.",
    "Turn this into formal English.",
    "Rephrase this text so it sounds professional.",
    "Rewrite the message below for a formal business email.",
]
# (base, third person singular, past, rest)
TENSE_VERBS = [
    ("walk", "walks", "walked", "to school"),
    ("play", "plays", "played", "the piano after lunch"),
    ("eat", "eats", "ate", "an apple every morning"),
    ("read", "reads", "read", "the newspaper at breakfast"),
    ("write", "writes", "wrote", "a letter to a friend"),
    ("drink", "drinks", "drank", "tea in the garden"),
    ("catch", "catches", "caught", "the bus at seven"),
    ("buy", "buys", "bought", "fresh bread at the market"),
    ("swim", "swims", "swam", "in the lake"),
    ("sing", "sings", "sang", "in the choir"),
    ("teach", "teaches", "taught", "maths at the local school"),
    ("feed", "feeds", "fed", "the chickens"),
    ("build", "builds", "built", "a sandcastle on the beach"),
    ("wash", "washes", "washed", "the car on Sundays"),
    ("clean", "cleans", "cleaned", "the kitchen after dinner"),
    ("take", "takes", "took", "the dog for a walk"),
    ("win", "wins", "won", "the race"),
    ("make", "makes", "made", "pancakes for breakfast"),
    ("visit", "visits", "visited", "the museum"),
    ("ride", "rides", "rode", "a bike to work"),
    ("watch", "watches", "watched", "a film in the evening"),
    ("grow", "grows", "grew", "tomatoes in the garden"),
    ("find", "finds", "found", "a coin on the pavement"),
    ("paint", "paints", "painted", "the fence"),
]
SUBJ_SING = ["Tom", "My sister", "The old man", "Our teacher", "Lucy", "My neighbour", "The little boy", "She", "He"]
SUBJ_PLUR = ["We", "They", "My parents", "The children", "Our friends", "I"]
PAST_TEMPLATES = [
    "Rewrite this sentence in the past tense.",
    "Change the following sentence to the past tense.",
    "Put this sentence into the past tense.",
    "Write the sentence again, but in the past tense.",
]
PRESENT_TEMPLATES = [
    "Rewrite this sentence in the present tense.",
    "Change the following sentence to the present tense.",
    "Put this sentence into the simple present tense.",
]

COMMON_FUNCTION_WORDS = {
    "the",
    "and",
    "was",
    "were",
    "that",
    "this",
    "with",
    "from",
    "they",
    "their",
    "there",
    "have",
    "been",
    "what",
    "when",
    "into",
    "your",
    "will",
    "would",
    "could",
    "should",
}


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:  # swap two neighbouring letters
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:  # drop a letter
        return word[:i] + word[i + 1 :]
    if kind == 2:  # double a letter
        return word[:i] + word[i] + word[i:]
    vowels = "aeiou"
    idx = [j for j in range(1, len(word)) if word[j] in vowels]
    if not idx:
        return word[:i] + word[i] + word[i:]
    j = pick(rng, idx)
    return word[:j] + pick(rng, [v for v in vowels if v != word[j]]) + word[j + 1 :]


def _sentence(ex: str) -> str:
    ex = ex.strip()
    ex = cap(ex)
    return ex if ex[-1] in ".!?" else ex + "."


# Hand-written plain sentences (a second source, next to the WordNet examples, for typos and word swaps).
HAND_SENTENCES = [
    "My brother bought a small red car last spring.",
    "The old bridge over the river was closed for repairs.",
    "We walked along the quiet beach before breakfast.",
    "The museum opens at ten and closes early on Sundays.",
    "Her grandmother keeps chickens in a big wooden shed.",
    "The train was late because of the heavy snow.",
    "They painted the kitchen a bright yellow colour.",
    "Our neighbour plays the violin every evening.",
    "The little girl was afraid of the dark forest.",
    "He found an old map hidden inside the book.",
    "The weather was cold, so we stayed inside and played cards.",
    "She always drinks a big cup of coffee at work.",
    "The doctor told him to rest for a few days.",
    "A strong wind blew the leaves across the road.",
    "The students listened carefully to the story.",
    "We need to buy bread, eggs and butter.",
    "The hotel room was small but very clean.",
    "My uncle started a new job in a busy office.",
    "The baby finally fell asleep after a long walk.",
    "The river was too fast for the boat to cross.",
    "The concert was loud, and the crowd sang along.",
    "His answer was quick and completely correct.",
    "The shop sells fresh fruit and cheap flowers.",
    "The dog barked at the postman every morning.",
    "This chair is very old and a little broken.",
    "The hill behind the village is steep and rocky.",
    "The soup was too hot to eat straight away.",
    "They began the long journey home at dawn.",
    "The film was boring, so I left before the end.",
    "The farmer was tired after a hard day in the fields.",
]
SINGLE_TYPO_TEMPLATES = [
    "There is one spelling mistake in this sentence. Correct it.",
    "Fix the single typo in this sentence.",
    "One word in this sentence is misspelled. Write the sentence correctly.",
    "Find the spelling mistake and rewrite the sentence without it.",
]
FUTURE_TEMPLATES = [
    "Rewrite this sentence in the future tense.",
    'Change the following sentence to the future tense, using "will".',
    "Put this sentence into the future tense.",
    "Rewrite the sentence so that it describes what will happen.",
    "Make this sentence about the future.",
]
NEG_TEMPLATES = [
    "Make this sentence negative.",
    "Rewrite the sentence in the negative form.",
    "Change the following sentence into a negative sentence.",
    "Turn this statement into its negative.",
]
QUESTION_TEMPLATES = [
    "Turn this statement into a yes/no question.",
    "Rewrite the sentence as a question.",
    "Change the following sentence into a question.",
]
# word -> replacements that keep the sentence grammatical (never "glad"/"happy")
SWAPS = {
    "big": ["large", "huge"],
    "small": ["little", "tiny"],
    "old": ["ancient"],
    "quick": ["fast", "rapid"],
    "fast": ["quick"],
    "cold": ["chilly", "freezing"],
    "hot": ["warm", "boiling"],
    "tired": ["sleepy", "exhausted"],
    "bought": ["purchased"],
    "began": ["started"],
    "started": ["began"],
    "quiet": ["silent", "peaceful"],
    "loud": ["noisy"],
    "boring": ["dull"],
    "clean": ["tidy", "spotless"],
    "busy": ["crowded", "hectic"],
    "afraid": ["scared", "frightened"],
    "road": ["street"],
    "shop": ["store"],
    "car": ["van", "truck"],
    "cheap": ["inexpensive"],
    "dog": ["puppy"],
    "red": ["blue", "green"],
    "rocky": ["stony"],
    "correct": ["right", "accurate"],
    "heavy": ["thick"],
    "strong": ["powerful"],
    "bright": ["vivid"],
    "angry": ["cross", "furious"],
    "difficult": ["hard"],
    "easy": ["simple"],
    "rich": ["wealthy"],
    "sad": ["unhappy"],
    "smart": ["clever"],
    "dark": ["gloomy"],
    "house": ["home"],
    "help": ["assist"],
    "wet": ["damp"],
    "beautiful": ["lovely", "pretty"],
}
SWAP_TEMPLATES = [
    "Replace the word '{a}' with '{b}' in this sentence.",
    'Rewrite the sentence, using "{b}" instead of "{a}".',
    'Change "{a}" to "{b}" in the following sentence.',
    "Substitute '{b}' for '{a}' in this sentence.",
    'In the sentence below, put the word "{b}" where "{a}" is.',
]
# (singular, plural, predicates that fit both)
NOUNS_SP = [
    ("dog", "dogs", ["asleep on the sofa", "very friendly", "in the garden"]),
    ("child", "children", ["tired after the trip", "in the playground", "very excited"]),
    ("box", "boxes", ["too heavy to lift", "in the attic", "full of old books"]),
    ("mouse", "mice", ["under the table", "very small", "in the barn"]),
    ("city", "cities", ["crowded in the summer", "very expensive", "close to the sea"]),
    ("leaf", "leaves", ["yellow and brown", "on the path", "wet from the rain"]),
    ("man", "men", ["at the bus stop", "very tall", "ready to leave"]),
    ("woman", "women", ["in the office", "very kind", "ready to start"]),
    ("knife", "knives", ["very sharp", "in the drawer", "on the table"]),
    ("baby", "babies", ["asleep", "hungry", "in the next room"]),
    ("bus", "buses", ["late again", "full of tourists", "at the station"]),
    ("tooth", "teeth", ["white and healthy", "very sore", "clean"]),
    ("foot", "feet", ["cold", "sore after the walk", "wet"]),
    ("glass", "glasses", ["empty", "on the shelf", "very clean"]),
    ("story", "stories", ["very funny", "too long", "about dragons"]),
    ("bird", "birds", ["on the roof", "very noisy", "in the tree"]),
    ("potato", "potatoes", ["in the oven", "ready to eat", "too salty"]),
    ("shelf", "shelves", ["full of toys", "very dusty", "too high"]),
]
SP_FRAMES = [
    ("The {n} {be} {x}.", "is", "are"),
    ("This {n} {be} {x}.", "is", "are"),
    ("That {n} {be} {x}.", "was", "were"),
    ("The {n} {be} {x} yesterday.", "was", "were"),
    ("My {n} {be} {x}.", "is", "are"),
]
PLURAL_TEMPLATES = [
    "Rewrite this sentence in the plural.",
    "Make the noun in this sentence plural and change the rest to match.",
    "Change this sentence from singular to plural.",
]
SINGULAR_TEMPLATES = [
    "Rewrite this sentence in the singular.",
    "Make the noun in this sentence singular and change the rest to match.",
    "Change this sentence from plural to singular.",
]
PERSONS = {  # S, s, be, was, have, do, poss, obj, refl
    "I": ("I", "I", "am", "was", "have", "do", "my", "me", "myself"),
    "we": ("We", "we", "are", "were", "have", "do", "our", "us", "ourselves"),
    "she": ("She", "she", "is", "was", "has", "does", "her", "her", "herself"),
    "he": ("He", "he", "is", "was", "has", "does", "his", "him", "himself"),
    "they": ("They", "they", "are", "were", "have", "do", "their", "them", "themselves"),
}
PERSON_FRAMES = [
    "{S} {be} looking for {poss} keys.",
    "{S} {was} late for {poss} train this morning.",
    "{S} {have} finished {poss} homework.",
    "{S} {do} not like rainy weather.",
    "{S} packed {poss} bags and went to the station.",
    "The teacher gave {obj} a book about birds.",
    "{S} {be} learning to play the guitar.",
    "{S} will call {poss} grandmother after lunch.",
    "{S} {have} lived in this town for ten years.",
    "{S} {was} tired, so {s} went to bed early.",
    "Please tell {obj} when the train arrives.",
    "{S} made {poss} own birthday cake.",
    "{S} {be} proud of {poss} vegetable garden.",
    "{S} {have} two cousins in {city}.",
    "{S} cleaned the whole flat by {refl}.",
    "{S} {was} happy when {poss} team won the match.",
    "{S} {be} going to visit {poss} aunt in {city}.",
    "Nobody told {obj} about the party.",
]
PERSON_PAIRS = [
    ("I", "we"),
    ("I", "we"),
    ("we", "I"),
    ("I", "she"),
    ("I", "he"),
    ("I", "they"),
    ("we", "they"),
    ("she", "I"),
]
PERSON_TEMPLATES = [
    'Rewrite this sentence using "{b}" instead of "{a}".',
    'Change the subject from "{a}" to "{b}" and adjust the other words.',
    'Rewrite the sentence so that it is about "{b}" rather than "{a}".',
    'Replace "{a}" with "{b}" and make the rest of the sentence agree.',
]
WORDY_PREFIXES = [
    "Basically, what I want to say is that ",
    "It is a well-known fact that ",
    "As a matter of fact, it is true that ",
    "I would just like to point out that ",
    "To be perfectly honest with you, ",
]
WORDY_PHRASES = [
    ("at this point in time", "now"),
    ("on a daily basis", "every day"),
    ("each and every week", "every week"),
    ("in the early hours of the morning", "early in the morning"),
    ("on a regular basis", "regularly"),
    ("for the whole duration of the summer", "all summer"),
]
SHORT_TEMPLATES = [
    "Shorten this sentence but keep what it says.",
    "Remove the unnecessary words from this sentence.",
    "Rewrite the sentence more concisely.",
    "Cut the wordy parts out of this sentence.",
]
TIME_PHRASES = [
    "every morning",
    "on Saturdays",
    "after school",
    "in the summer",
    "at the weekend",
    "every evening",
    "on rainy days",
    "twice a week",
]
FRONT_TEMPLATES = [
    'Rewrite this sentence so that it begins with "{t}".',
    "Move the time phrase to the start of the sentence.",
    "Reorder the sentence so that the time expression comes first.",
]
SCRAMBLE_TEMPLATES = [
    "Put these words in the right order to make a sentence: {w}",
    "Unscramble the words to form a correct sentence: {w}",
    "Rearrange the following words into a sentence: {w}",
]
NAMEISH = {"Tom", "Lucy", "I"}


def _lf(subj: str) -> str:
    """Subject as it appears inside a sentence (lower-case first letter unless a name or 'I')."""
    return subj if subj in NAMEISH else subj[:1].lower() + subj[1:]


def _svo(rng: random.Random, timeless: bool = False):
    """(subject, singular?, base, third, past, rest) from the verb table."""
    verbs = (
        [v for v in TENSE_VERBS if not re.search(r"\b(every|at|on|after|in the evening)\b", v[3])]
        if timeless
        else TENSE_VERBS
    )
    base, third, past, rest = pick(rng, verbs)
    if rng.random() < 0.6:
        return pick(rng, SUBJ_SING), True, base, third, past, rest
    return pick(rng, SUBJ_PLUR), False, base, third, past, rest


def _source_sentence(rng: random.Random, ctx) -> str:
    return pick(rng, HAND_SENTENCES) if rng.random() < 0.35 else _sentence(pick(rng, ctx["examples"]))


def _add_typos(sent: str, k: int, rng: random.Random, ctx) -> str | None:
    tokens = sent.split(" ")
    cand = [i for i, t in enumerate(tokens) if t.isalpha() and len(t) >= 4 and t.lower() not in COMMON_FUNCTION_WORDS]
    cand = cand or [i for i, t in enumerate(tokens) if t.rstrip(".,").isalpha() and len(t) >= 4]
    if len(cand) < k:
        return None
    for i in sorted(rng.sample(cand, k)):
        for _ in range(5):
            t = _typo(tokens[i], rng)
            if t != tokens[i] and not ctx["is_word"](t):
                tokens[i] = t
                break
        else:
            return None
    bad = " ".join(tokens)
    return None if bad == sent else bad


def swap_candidates(hand: list[str], examples: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    """word of SWAPS -> (hand-written sentences, WordNet sentences) holding it as a whole lower-case token."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    for k, sents in enumerate((hand, examples)):
        for s in sents:
            for w in sorted(set(re.findall(r"[A-Za-z']+", s))):
                if w in SWAPS:
                    out.setdefault(w, ([], []))[k].append(s)
    return out


def gen_rewriting(rng: random.Random, ctx) -> tuple[str, str | None, str] | None:
    item = _gen_rewriting(rng, ctx)
    if not item or (item[1] is not None and item[1].strip() == item[2].strip()):
        return None  # the response must always differ from the input
    return item


def _gen_rewriting(rng: random.Random, ctx):
    r = rng.random()
    if r < 0.12:  # several typos
        sent = _source_sentence(rng, ctx)
        bad = _add_typos(sent, rng.choice([2, 2, 3]), rng, ctx)
        return bad and (pick(rng, SPELL_TEMPLATES), bad, sent)
    if r < 0.19:  # exactly one typo
        sent = _source_sentence(rng, ctx)
        bad = _add_typos(sent, 1, rng, ctx)
        return bad and (pick(rng, SINGLE_TYPO_TEMPLATES + SPELL_TEMPLATES[:2]), bad, sent)
    if r < 0.25:
        sent = _sentence(pick(rng, ctx["examples"]))
        return pick(rng, CAPS_TEMPLATES), sent[:-1].lower(), sent
    if r < 0.28:
        sent = _sentence(pick(rng, ctx["examples"]))
        return pick(rng, UPPER_TEMPLATES), sent, sent.upper()
    if r < 0.38:
        inf, form = pick(rng, FORMAL_PAIRS)
        vals = {k: pick(rng, v) for k, v in FORMAL_SLOTS.items()}
        vals["name"], vals["day"] = pick(rng, NAMES), pick(rng, DAYS)
        return pick(rng, FORMAL_TEMPLATES), inf.format(**vals), form.format(**vals)
    if r < 0.57:  # tenses: past, present, future
        subj, sing, base, third, past, rest = _svo(rng)
        present = third if sing else base
        pres_s, past_s, fut_s = f"{subj} {present} {rest}.", f"{subj} {past} {rest}.", f"{subj} will {base} {rest}."
        if r < 0.44:
            return pick(rng, PAST_TEMPLATES), pres_s, past_s
        if r < 0.47:
            return pick(rng, PRESENT_TEMPLATES), past_s, pres_s
        return pick(rng, FUTURE_TEMPLATES), (pres_s if rng.random() < 0.7 else past_s), fut_s
    if r < 0.66:  # replace a given word with another given word
        w = pick(rng, sorted(ctx["swap_cands"]))  # word first, so that no frequent word dominates
        hand, wn_sents = ctx["swap_cands"][w]
        sent = pick(rng, hand) if hand and (not wn_sents or rng.random() < 0.5) else pick(rng, wn_sents)
        b = pick(rng, SWAPS[w])
        new = re.sub(rf"\b{w}\b", b, sent, count=1)
        new = re.sub(r"\ban ([^aeiou])", r"a \1", re.sub(r"\ba ([aeiou])", r"an \1", new))
        return pick(rng, SWAP_TEMPLATES).format(a=w, b=b), sent, new
    if r < 0.74:  # negative
        k = rng.randrange(4)
        if k < 3:
            subj, sing, base, third, past, rest = _svo(rng)
            if k == 0:
                return (
                    pick(rng, NEG_TEMPLATES),
                    f"{subj} {third if sing else base} {rest}.",
                    f"{subj} {'does' if sing else 'do'} not {base} {rest}.",
                )
            if k == 1:
                return pick(rng, NEG_TEMPLATES), f"{subj} {past} {rest}.", f"{subj} did not {base} {rest}."
            return pick(rng, NEG_TEMPLATES), f"{subj} can {base} {rest}.", f"{subj} cannot {base} {rest}."
        sg, pl, preds = pick(rng, NOUNS_SP)
        frame, be1, _ = pick(rng, SP_FRAMES)
        s = frame.format(n=sg, be=be1, x=pick(rng, preds))
        return pick(rng, NEG_TEMPLATES), s, s.replace(f" {be1} ", f" {be1} not ", 1)
    if r < 0.81:  # singular <-> plural
        sg, pl, preds = pick(rng, NOUNS_SP)
        frame, be1, be2 = pick(rng, SP_FRAMES)
        x = pick(rng, preds)
        one = frame.format(n=sg, be=be1, x=x)
        many = frame.replace("This", "These").replace("That", "Those").format(n=pl, be=be2, x=x)
        if rng.random() < 0.65:
            return pick(rng, PLURAL_TEMPLATES), one, many
        return pick(rng, SINGULAR_TEMPLATES), many, one
    if r < 0.88:  # change the person
        a, b = pick(rng, PERSON_PAIRS)
        frame, city = pick(rng, PERSON_FRAMES), pick(rng, CITIES)
        keys = ("S", "s", "be", "was", "have", "do", "poss", "obj", "refl")
        fa = dict(zip(keys, PERSONS[a]), city=city)
        fb = dict(zip(keys, PERSONS[b]), city=city)
        return pick(rng, PERSON_TEMPLATES).format(a=a, b=b), frame.format(**fa), frame.format(**fb)
    if r < 0.93:  # shorten
        subj, sing, base, third, past, rest = _svo(rng, timeless=True)
        core = f"{subj} {third if sing else base} {rest}"
        if rng.random() < 0.5:
            return pick(rng, SHORT_TEMPLATES), f"{pick(rng, WORDY_PREFIXES)}{_lf(subj)}{core[len(subj) :]}.", f"{core}."
        wordy, short = pick(rng, WORDY_PHRASES)
        return pick(rng, SHORT_TEMPLATES), f"{core} {wordy}.", f"{core} {short}."
    if r < 0.97:  # reorder
        subj, sing, base, third, past, rest = _svo(rng, timeless=True)
        core = f"{subj} {third if sing else base} {rest}"
        if rng.random() < 0.55:
            t = pick(rng, TIME_PHRASES)
            return (
                pick(rng, FRONT_TEMPLATES).format(t=cap(t)),
                f"{core} {t}.",
                f"{cap(t)}, {_lf(subj)}{core[len(subj) :]}.",
            )
        words = core.split()
        for _ in range(6):
            shuffled = rng.sample(words, len(words))
            if shuffled != words:
                break
        else:
            return None
        return (
            pick(rng, SCRAMBLE_TEMPLATES).format(w=" / ".join(w.lower() if w not in NAMEISH else w for w in shuffled)),
            None,
            f"{core}.",
        )
    subj, sing, base, third, past, rest = _svo(rng)  # statement -> question
    if rng.random() < 0.7:
        return (
            pick(rng, QUESTION_TEMPLATES),
            f"{subj} {third if sing else base} {rest}.",
            f"{'Does' if sing else 'Do'} {_lf(subj)} {base} {rest}?",
        )
    return pick(rng, QUESTION_TEMPLATES), f"{subj} {past} {rest}.", f"Did {_lf(subj)} {base} {rest}?"


# ---------------------------------------------------------------------------------------------
# summarising
# ---------------------------------------------------------------------------------------------

SUMMARY_TEMPLATES = [
    "Summarise this in one sentence.",
    "Give a one-sentence summary of the following text.",
    "Write a one-sentence summary.",
    "Sum up the text below in a single sentence.",
    "Summarise the main point of the text in one sentence.",
    "Briefly summarise the following.",
    "Provide a short summary of this passage.",
    "Summarize the following paragraph in one sentence.",
    "Give me the gist of this text in one sentence.",
    "Write a single sentence that summarises this text.",
    "Summarise the passage below in no more than 25 words.",
]
MEETINGS = ["team meeting", "project review", "budget meeting", "training session", "planning meeting"]
MEETING_REASONS = [
    "several people are on a course that morning",
    "the director has another appointment",
    "the client asked for a later time",
    "the report is not ready yet",
    "the room is needed for interviews",
]
PRODUCTS = {  # product: [(pro sentence, pro summary)], [(con sentence, con summary)]
    "kettle": (
        [
            ("It boils water in about a minute", "boils water quickly"),
            ("It looks stylish on the counter", "looks stylish"),
        ],
        [("It is quite loud when it boils", "is loud"), ("The handle gets hot", "has a handle that gets hot")],
    ),
    "backpack": (
        [
            ("It has lots of pockets and feels comfortable on my back", "is comfortable and has many pockets"),
            ("It kept my laptop dry in a heavy storm", "is waterproof"),
        ],
        [("One of the zips broke after a month", "has a weak zip"), ("It is heavier than it looks", "is heavy")],
    ),
    "pair of headphones": (
        [
            ("The sound is clear and the bass is strong", "sound great"),
            ("The battery lasts for two days", "have a long battery life"),
        ],
        [
            ("They hurt my ears after an hour", "are uncomfortable after a while"),
            ("The case feels cheap", "come with a cheap case"),
        ],
    ),
    "desk lamp": (
        [("It gives a bright, even light", "gives bright light"), ("It is easy to adjust", "is easy to adjust")],
        [("The cable is very short", "has a short cable"), ("The base wobbles a little", "has a wobbly base")],
    ),
    "vacuum cleaner": (
        [
            ("It picks up dust and pet hair easily", "cleans well"),
            ("It is light and easy to carry upstairs", "is light"),
        ],
        [("The bin fills up very quickly", "has a small bin"), ("It is very noisy", "is noisy")],
    ),
    "phone case": (
        [
            ("It protected my phone when I dropped it on the stairs", "protects the phone well"),
            ("It has a nice grip", "has a good grip"),
        ],
        [("The colour faded after a few weeks", "fades quickly"), ("It makes the phone bulky", "is bulky")],
    ),
    "tent": (
        [
            ("It is quick to put up, even alone", "is quick to put up"),
            ("It stayed dry during a night of rain", "keeps the rain out"),
        ],
        [
            ("It is too small for three people", "is cramped"),
            ("The bag it comes in is hard to close", "comes with a bag that is hard to close"),
        ],
    ),
}
VERDICTS = [
    ("Overall, I would recommend it.", "would recommend it"),
    ("For the price, I am happy with it.", "is happy with it for the price"),
    ("I would not buy it again.", "would not buy it again"),
    ("I am going to return it.", "plans to return it"),
    ("It does the job, so I will keep it.", "will keep it"),
]
TEAMS = [
    "Riverside Rovers",
    "Hilltop United",
    "Northgate City",
    "Lakeside Athletic",
    "Westbrook Town",
    "Eastfield Rangers",
    "Harbour FC",
    "Old Mill Wanderers",
]
WEATHER_EVENTS = [
    (
        "heavy rain",
        "Up to 40 millimetres could fall in a few hours, and some roads may flood",
        "avoid driving unless their trip is necessary",
    ),
    (
        "strong winds",
        "Gusts of up to 90 kilometres per hour are expected near the coast",
        "tie down garden furniture and stay away from the beach",
    ),
    (
        "a heatwave",
        "Temperatures could reach 38 degrees in the afternoon",
        "drink plenty of water and stay out of the midday sun",
    ),
    (
        "thick fog",
        "Visibility may drop below 50 metres in the early morning",
        "drive slowly and leave extra time for their journeys",
    ),
    (
        "heavy snow",
        "Up to 20 centimetres of snow could settle on higher ground",
        "check bus and train times before leaving home",
    ),
]
REGIONS = [
    "the north coast",
    "the western hills",
    "the capital region",
    "the southern valleys",
    "the east of the country",
    "the islands",
]
STUDY_ANIMALS = [
    (
        "crows",
        "could remember individual human faces for several years",
        "recognising people helps them avoid danger",
        "test whether young crows learn this from their parents",
    ),
    (
        "goats",
        "preferred to approach photos of smiling people",
        "goats have lived close to humans for thousands of years",
        "study sheep in the same way",
    ),
    (
        "sea turtles",
        "used the Earth's magnetic field to find the beach where they hatched",
        "the field is slightly different along each stretch of coast",
        "track turtles with small satellite tags",
    ),
    (
        "pigeons",
        "could learn to tell paintings by different artists apart",
        "they are very good at spotting patterns",
        "test whether they can remember the paintings a year later",
    ),
    (
        "octopuses",
        "slept in two stages, much like humans do",
        "the active stage helps them store memories",
        "measure their brain activity during sleep",
    ),
    (
        "horses",
        "changed their facial expressions when they met a new horse",
        "faces help them show whether they are friendly",
        "film wild horses in the mountains",
    ),
    (
        "zebrafish",
        "could regrow damaged parts of their hearts",
        "certain cells can turn back into young heart cells",
        "look for the same cells in mice",
    ),
]
UNIS = [
    "a university in Norway",
    "a research centre in Kenya",
    "a university in Canada",
    "a lab in Brazil",
    "a university in Scotland",
]
SHOPS = [
    ("Parker's", "hardware store"),
    ("Petal & Stem", "florist"),
    ("The Paper Lantern", "bookshop"),
    ("Toy Box", "toy shop"),
    ("Green Cross", "pharmacy"),
    ("Corner Cup", "café"),
    ("Fresh Fields", "greengrocer"),
]
SHOP_CHANGES = [
    (
        "close for two weeks",
        "so that the shop can be repaired after a leak damaged the floor",
        "close for two weeks for repairs",
    ),
    (
        "start opening on Sundays",
        "because so many customers asked for it",
        "start opening on Sundays because customers asked for it",
    ),
    (
        "move to a bigger building on Station Road",
        "because the old shop has become too small",
        "move to a bigger building because the old shop is too small",
    ),
    (
        "begin delivering to homes",
        "to help older customers who find it hard to visit",
        "begin home deliveries to help older customers",
    ),
    ("stop using plastic bags", "to cut down on waste", "stop using plastic bags to reduce waste"),
]
SCHOOL_EVENTS = [
    ("spring fair", "games, a cake stall and a raffle"),
    ("charity concert", "songs by the choir, a jazz band and a piano duet"),
    ("fun run", "a 5-kilometre race, face painting and a barbecue"),
    ("talent show", "singing, magic tricks and comedy acts"),
    ("sports day", "races, a tug of war and a football match between parents and teachers"),
]
SCHOOLS = ["Oakwood Primary School", "St Mary's School", "Hillside Academy", "Brookfield School", "Maple Grove School"]
CAUSES = [
    "a new school garden",
    "the local animal shelter",
    "new books for the school",
    "a children's hospital",
    "a trip to the coast for every class",
]


# Extra summarising passages (hand-written). Each summary is reworded and shorter than the passage's sentences.
ROADS = ["Main Street", "Mill Lane", "Church Road", "the High Street", "Station Avenue", "Park Road"]
ROAD_WORKS = [
    ("the old water pipes are replaced", "pipe repairs"),
    ("the road surface is rebuilt", "resurfacing"),
    ("a new cycle lane is built", "work on a new cycle lane"),
    ("the gas main is repaired", "gas repairs"),
    ("the bridge is strengthened", "bridge repairs"),
]
PET_NAMES = ["Biscuit", "Pepper", "Rocky", "Luna", "Milo", "Daisy", "Bruno", "Poppy"]
PET_KINDS = [
    ("dog", "brown", "red collar"),
    ("dog", "black and white", "blue collar"),
    ("parrot", "green", "ring on one leg"),
    ("tortoise", "small", "white spot painted on its shell"),
    ("rabbit", "grey", "bell on its collar"),
]
RECIPES = [
    (
        "pancakes",
        "Mix flour, eggs and milk into a smooth batter",
        "Pour a thin layer into a hot, buttered pan",
        "Turn each pancake over after a minute and serve it with lemon or jam",
    ),
    (
        "a simple tomato soup",
        "Fry a chopped onion in olive oil until soft",
        "Add tinned tomatoes, a little stock and some salt",
        "Simmer for twenty minutes, then blend the soup until smooth",
    ),
    (
        "a fruit smoothie",
        "Put a banana, a handful of berries and some yogurt in a blender",
        "Add a splash of milk or juice",
        "Blend for thirty seconds and drink it straight away",
    ),
    (
        "garlic bread",
        "Mix soft butter with crushed garlic and parsley",
        "Spread it on slices of a long loaf",
        "Bake the bread for ten minutes until it is golden",
    ),
]
LATE_STARTS = [
    (
        "running",
        "she could only jog for five minutes without stopping",
        "she finished her first marathon in {city}",
        "took up running late in life and has now completed a marathon",
    ),
    (
        "swimming",
        "he was afraid to put his face in the water",
        "he swam across the bay near {city} for charity",
        "learned to swim as an adult and later swam across a bay for charity",
    ),
    (
        "painting",
        "she painted only small pictures of her garden",
        "her paintings were shown in a gallery in {city}",
        "began painting late in life and now has work shown in a gallery",
    ),
    (
        "the piano",
        "he could only play a few simple tunes",
        "he played a short concert at a café in {city}",
        "started learning the piano late and has since given a small concert",
    ),
]
AGES = [55, 60, 62, 65, 68, 70, 72]
COUNCIL_PLANS = [
    (
        "plant {n} new trees along the main roads",
        "to give more shade in summer and to clean the air",
        "is planting {n} trees to provide shade and cleaner air",
    ),
    (
        "build a new playground next to the library",
        "because families have asked for a safe place to play",
        "is building a new playground because families asked for one",
    ),
    (
        "make the town centre free of cars on Sundays",
        "so that people can walk and cycle safely",
        "will close the town centre to cars on Sundays",
    ),
    (
        "put {n} new benches in the parks",
        "because older residents said there were too few places to rest",
        "is adding {n} park benches for people who need a rest",
    ),
    (
        "open a repair café once a month",
        "to help people fix broken things instead of throwing them away",
        "is starting a monthly repair café to cut waste",
    ),
]
SLEEP_TEXTS = [
    (
        "Doctors say most adults need seven to nine hours of sleep a night.",
        "People who often sleep less than six hours are more likely to catch colds and to feel low.",
        "Going to bed at the same time every night and keeping screens out of the bedroom can help.",
        "Adults need seven to nine hours of sleep, and regular habits make good sleep easier.",
    ),
    (
        "Walking for half an hour a day is one of the easiest ways to stay fit.",
        "It strengthens the heart, helps to control weight and can improve mood.",
        "Unlike many sports, it needs no special equipment and costs nothing.",
        "A daily walk is a free and simple way to improve health and mood.",
    ),
    (
        "Drinking enough water matters more than many people think.",
        "Even mild thirst can cause headaches and make it harder to concentrate.",
        "Keeping a bottle on the desk and drinking a glass with each meal are simple ways to drink more.",
        "Staying well hydrated prevents headaches and helps concentration.",
    ),
]
TRIPS = [("cycled", "bike"), ("walked", "foot"), ("sailed", "boat")]


def gen_summarising_extra(rng: random.Random, ins: str) -> tuple[str, str | None, str]:
    kind = rng.randrange(6)
    if kind == 0:
        road, (work, short) = pick(rng, ROADS), pick(rng, ROAD_WORKS)
        d1 = rng.randint(1, 14)
        month = pick(rng, MONTHS)
        text = (
            f"{cap(road)} will be closed to cars from {d1} {month} for about {pick(rng, ['two', 'three', 'four', 'six'])} weeks "
            f"while {work}. Buses will take a different route, and the nearest stop will move to {pick(rng, ROADS)}. "
            f"People who live on the street will still be able to reach their homes on foot."
        )
        return ins, text, f"{cap(road)} is shutting to traffic for several weeks for {short}."
    if kind == 1:
        pet, (animal, colour, mark) = pick(rng, PET_NAMES), pick(rng, PET_KINDS)
        place, day = (
            pick(rng, ["the park", "the station", "Hill Road", "the river path", "the school gates"]),
            pick(rng, DAYS),
        )
        text = (
            f"Have you seen {pet}? Our {colour} {animal} went missing near {place} on {day} afternoon. {pet} is friendly and "
            f"has a {mark}. If you see {pet}, please call {pick(rng, NAMES)} on the number below. We miss {pet} very much."
        )
        return ins, text, f"A family is asking for help to find {pet}, their missing {animal}."
    if kind == 2:
        dish, s1, s2, s3 = pick(rng, RECIPES)
        text = f"Here is how to make {dish}. {s1}. {s2}. {s3}."
        return ins, text, f"The text gives three quick steps for making {dish}."
    if kind == 3:
        hobby, start, end, short = pick(rng, LATE_STARTS)
        name, age, years = pick(rng, NAMES), pick(rng, AGES), pick(rng, ["two", "three", "four", "five"])
        city = pick(rng, CITIES)
        text = (
            f"{name} started {hobby} at the age of {age}. At first, {start}. After {years} years of practice, "
            f"{end.format(city=city)}. {name} says it is never too late to learn something new."
        )
        return ins, text, f"{name} {short}."
    if kind == 4:
        plan, why, short = pick(rng, COUNCIL_PLANS)
        n, town = (
            rng.choice([20, 50, 100, 200, 300]),
            pick(rng, ["Ashford", "Millbrook", "Kingsley", "Westport", "Elmwood"]),
        )
        text = (
            f"At its meeting on {pick(rng, DAYS)}, the {town} town council voted to {plan.format(n=n)}. The council said it wanted "
            f"to do this {why}. The work will start in {pick(rng, MONTHS)} and should take a few months."
        )
        return ins, text, f"{town} {short.format(n=n)}."
    a, b, c, summary = pick(rng, SLEEP_TEXTS)
    return ins, f"{a} {b} {c}", summary


STUDY_SHORT = {
    "crows": "Crows can remember human faces for years",
    "goats": "Goats seem to prefer smiling human faces",
    "sea turtles": "Sea turtles find their home beach using the Earth's magnetism",
    "pigeons": "Pigeons can learn to tell different painters apart",
    "octopuses": "Octopuses sleep in two stages, like people",
    "horses": "Horses use facial expressions when meeting new horses",
    "zebrafish": "Zebrafish can repair their own damaged hearts",
}


def gen_summarising(rng: random.Random, ctx) -> tuple[str, str | None, str]:
    ins = pick(rng, SUMMARY_TEMPLATES)
    if rng.random() < 0.4:
        return gen_summarising_extra(rng, ins)
    kind = rng.randrange(7)
    if kind == 0:
        day, meeting, reason = pick(rng, DAYS), pick(rng, MEETINGS), pick(rng, MEETING_REASONS)
        t1, t2 = sorted(rng.sample(TIMES[:6], 2), key=TIMES.index)
        room, name = pick(rng, ["Room 2", "the main hall", "the second-floor meeting room"]), pick(rng, NAMES)
        text = (
            f"Hi everyone, {day}'s {meeting} has been moved from {t1} to {t2} because {reason}. It will still be held in "
            f"{room}. Please update your calendars and let me know if the new time does not work for you. Thanks, {name}"
        )
        if rng.random() < 0.3:
            ins = pick(
                rng,
                [
                    "What is the main point of this email? Answer in one sentence.",
                    "Summarise this email in one sentence.",
                ],
            )
        return ins, text, f"The {meeting} on {day} now starts at {t2} instead of {t1}."
    if kind == 1:
        prod = pick(rng, sorted(PRODUCTS))
        pros, cons = PRODUCTS[prod]
        (ps, pshort), (cs, cshort), (vs, vshort) = pick(rng, pros), pick(rng, cons), pick(rng, VERDICTS)
        when = pick(rng, ["last month", "two weeks ago", "in the spring", "for my birthday", "a few days ago"])
        text = f"I bought this {prod} {when}. {ps}, which I really like. However, {cs[0].lower() + cs[1:]}. {vs}"
        the = "The pair of headphones" if prod == "pair of headphones" else f"The {prod}"
        return ins, text, f"{the} {pshort} but {cshort}, and the reviewer {vshort}."
    if kind == 2:
        a, b = rng.sample(TEAMS, 2)
        s1 = rng.randint(2, 5)
        s2 = rng.randint(0, s1 - 1)
        player = f"{pick(rng, NAMES)} {pick(rng, SURNAMES)}"
        k = rng.randint(2, s1)
        pos = pick(rng, ["first", "second", "third", "fourth"])
        day = pick(rng, DAYS)
        text = (
            f"{a} beat {b} {s1}-{s2} on {day} in front of a home crowd of {rng.randint(3, 30)},000. {player} scored "
            f"{NUM_WORDS[k]} of the goals, including one in the final minute. {possessive(b)} coach said his team had been tired "
            f"after a long week. The result moves {a} up to {pos} place in the league."
        )
        return (
            ins,
            text,
            f"{a} beat {b} {s1}-{s2}, with {NUM_WORDS[k]} goals from {player}, and moved up to {pos} place in the league.",
        )
    if kind == 3:
        cond, detail, advice = pick(rng, WEATHER_EVENTS)
        region, day = pick(rng, REGIONS), pick(rng, DAYS)
        day2 = DAYS[(DAYS.index(day) + 2) % 7]
        text = (
            f"Forecasters say {region} will see {cond} on {day}. {detail}. People are advised to {advice}. "
            f"Conditions should improve by {day2}."
        )
        return ins, text, f"{cap(region)} can expect {cond} on {day}, but conditions should improve by {day2}."
    if kind == 4:
        animals, finding, cause, nxt = pick(rng, STUDY_ANIMALS)
        uni, n, years = (
            pick(rng, UNIS),
            rng.choice([12, 20, 35, 48, 60, 120]),
            pick(rng, ["two years", "three years", "eighteen months", "five years"]),
        )
        text = (
            f"Researchers at {uni} studied {n} {animals} for {years}. They found that the {animals} {finding}. "
            f"The team thinks this may be because {cause}. They now plan to {nxt}."
        )
        return ins, text, f"{STUDY_SHORT[animals]}, according to a new study."
    if kind == 5:
        (shop, kind_), (change, reason, short) = pick(rng, SHOPS), pick(rng, SHOP_CHANGES)
        month, owner = pick(rng, MONTHS), f"{pick(rng, NAMES)} {pick(rng, SURNAMES)}"
        text = (
            f"{shop}, the {kind_} on Market Street, will {change} from the start of {month}. The owner, {owner}, said "
            f"the decision was made {reason}. Opening hours on other days will not change. Customers can find "
            f"updates on the shop's website."
        )
        return ins, text, f"From the start of {month}, {shop} will {short}."
    school, (event, acts), cause = pick(rng, SCHOOLS), pick(rng, SCHOOL_EVENTS), pick(rng, CAUSES)
    day, month, price = pick(rng, ["Saturday", "Friday", "Sunday"]), pick(rng, MONTHS), rng.choice([2, 3, 5])
    text = (
        f"{school} will hold its {event} on the last {day} of {month}. The event starts at {pick(rng, TIMES[:4])} and "
        f"will include {acts}. Tickets cost {price} pounds, and all the money raised will go to {cause}. "
        f"Parents, grandparents and neighbours are all welcome."
    )
    return ins, text, f"{school} is holding a {event} in {month} to raise money for {cause}."


# ---------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------

REVIEW_ITEMS = [
    "The food",
    "The service",
    "This phone",
    "The hotel room",
    "The delivery",
    "This book",
    "The concert",
    "The new update",
    "This jacket",
    "The tour guide",
    "The film",
    "This blender",
]
POS_PRED = [
    "was excellent",
    "exceeded my expectations",
    "was worth every penny",
    "made my day",
    "was a pleasant surprise",
    "was fantastic from start to finish",
    "was perfect",
    "was better than I hoped",
]
NEG_PRED = [
    "was a complete waste of money",
    "was terrible",
    "stopped working after two days",
    "was really disappointing",
    "left me frustrated",
    "was far worse than advertised",
    "arrived broken",
    "was a total letdown",
]
POS_TAIL = [
    "I will definitely come back.",
    "Highly recommended!",
    "I would buy it again.",
    "Five stars from me.",
    "Absolutely loved it.",
    "",
]
NEG_TAIL = ["I want a refund.", "Never again.", "I would not recommend it to anyone.", "One star.", "Avoid it.", ""]
SENT_LABELS = [("Positive", "Negative"), ("Positive", "Negative"), ("Satisfied", "Unsatisfied"), ("Good", "Bad")]
SENT_TEMPLATES = [
    "Is this review {a} or {b}?",
    "Classify the sentiment of this review as {a} or {b}.",
    "What is the sentiment of the following text? Answer {a} or {b}.",
    "Label the following comment as {a} or {b}.",
    "Decide if this customer comment is {a} or {b}.",
]
HEADLINES = {
    "Sports": [
        "{team} win the cup after a dramatic penalty shoot-out",
        "Star striker signs a new three-year contract",
        "Tennis champion knocked out in the first round",
        "Marathon record broken in {city}",
        "{team} sack their manager after five defeats in a row",
    ],
    "Technology": [
        "New smartphone folds into the size of a wallet",
        "Software update fixes battery problem on millions of laptops",
        "Start-up in {city} builds a robot that sorts recycling",
        "Electric car batteries now charge in ten minutes",
        "Popular messaging app adds video calls for large groups",
    ],
    "Health": [
        "Doctors say a short daily walk lowers the risk of heart disease",
        "Flu vaccine now available at local pharmacies",
        "Study links poor sleep to higher stress levels",
        "Hospital in {city} opens a new children's ward",
        "Experts recommend less sugar in school lunches",
    ],
    "Politics": [
        "Parliament passes new law on public transport",
        "Prime minister meets foreign leaders in {city}",
        "Voters head to the polls in regional elections",
        "Government announces tax cut for small businesses",
        "Opposition party chooses a new leader",
    ],
    "Business": [
        "Supermarket chain reports record profits",
        "Car maker to open a new factory near {city}",
        "Shares fall after the bank raises interest rates",
        "Coffee prices rise for the third month in a row",
        "Local firm hires 200 new workers",
    ],
    "Weather": [
        "Heavy snow closes roads across the north",
        "Heatwave expected to last until the weekend",
        "Storm brings flooding to coastal towns near {city}",
        "Driest spring in fifty years worries farmers",
        "Thick fog delays flights at {city} airport",
    ],
}
TOPIC_TEMPLATES = [
    "What is the topic of this headline? Choose from: {opts}.",
    "Classify this headline into one of these categories: {opts}.",
    "Which category does this news headline belong to ({opts})?",
    "Assign a topic to this headline. Options: {opts}.",
]
ODD_GROUPS = {
    "fruit": ["apple", "banana", "cherry", "mango", "pear", "grape", "peach", "plum", "lemon", "kiwi"],
    "vegetable": ["carrot", "potato", "onion", "cabbage", "broccoli", "pea", "leek", "spinach"],
    "colour": ["red", "blue", "green", "yellow", "purple", "orange", "pink", "brown"],
    "vehicle": ["car", "bus", "train", "bicycle", "lorry", "tram", "scooter", "van"],
    "furniture": ["chair", "table", "sofa", "wardrobe", "bed", "shelf", "desk", "stool"],
    "clothing": ["shirt", "jacket", "sock", "scarf", "coat", "skirt", "glove", "sweater"],
    "planet": ["Mars", "Venus", "Jupiter", "Saturn", "Mercury", "Neptune"],
    "body part": ["elbow", "knee", "finger", "shoulder", "ankle", "nose", "wrist"],
    "drink": ["tea", "coffee", "milk", "lemonade", "cocoa"],
}
ODD_TEMPLATES = [
    "Which word is the odd one out: {w}?",
    "Find the word that does not fit with the others: {w}.",
    "One of these words does not belong: {w}. Which one is it?",
    "Pick the odd one out from this list: {w}.",
]
ANIMAL_CLASSES = {
    "Mammal": [
        "dog",
        "horse",
        "elephant",
        "lion",
        "rabbit",
        "cow",
        "mouse",
        "giraffe",
        "tiger",
        "kangaroo",
        "bear",
        "sheep",
    ],
    "Bird": ["eagle", "sparrow", "owl", "parrot", "pigeon", "swan", "robin", "flamingo", "duck", "crow"],
    "Fish": ["salmon", "tuna", "trout", "cod", "shark", "carp", "herring", "sardine"],
    "Reptile": ["crocodile", "snake", "lizard", "tortoise", "iguana", "chameleon", "alligator", "cobra"],
}
ANIMAL_TEMPLATES = [
    "What kind of animal is a {x}: mammal, bird, fish, or reptile?",
    "Classify the animal as a mammal, bird, fish, or reptile: {x}.",
    "Mammal, bird, fish, or reptile? {X}",
    "Which group does the {x} belong to: mammals, birds, fish, or reptiles?",
]
QUESTIONS = [
    "Where did you put the {thing}",
    "Have you seen my {thing}",
    "Can you help me carry the {thing}",
    "What time does the {place} open",
    "Why is the {place} closed today",
    "How far is it to the {place}",
    "Did {name} call you yesterday",
    "Is the {thing} in the kitchen",
    "When will {name} arrive",
    "Who left the {thing} on the stairs",
]
Q_THINGS = ["umbrella", "red box", "keys", "ladder", "blue folder", "camera", "suitcase"]
Q_PLACES = ["museum", "post office", "swimming pool", "station", "bank", "zoo"]
QS_TEMPLATES = [
    "Is this sentence a question or a statement?",
    "Classify the following sentence as a question or a statement.",
    "Question or statement?",
]
EVENODD_TEMPLATES = ["Is {n} an even or an odd number?", "Classify the number {n} as even or odd.", "Even or odd: {n}?"]


def gen_classification(rng: random.Random, ctx) -> tuple[str, str | None, str]:
    r = rng.random()
    if r < 0.32:
        pos = rng.random() < 0.5
        item = pick(rng, REVIEW_ITEMS)
        pred = pick(rng, POS_PRED if pos else NEG_PRED)
        tail = pick(rng, POS_TAIL if pos else NEG_TAIL)
        text = f"{item} {pred}. {tail}".strip()
        a, b = pick(rng, SENT_LABELS)
        return pick(rng, SENT_TEMPLATES).format(a=a.lower(), b=b.lower()), text, a if pos else b
    if r < 0.56:
        topic = pick(rng, sorted(HEADLINES))
        head = pick(rng, HEADLINES[topic]).format(team=pick(rng, TEAMS), city=pick(rng, CITIES))
        others = rng.sample([t for t in sorted(HEADLINES) if t != topic], rng.randint(2, 3))
        opts = others + [topic]
        rng.shuffle(opts)
        return pick(rng, TOPIC_TEMPLATES).format(opts=", ".join(opts)), head, topic
    if r < 0.76:
        g1, g2 = rng.sample(sorted(ODD_GROUPS), 2)
        words = rng.sample(ODD_GROUPS[g1], 3)
        odd = pick(rng, ODD_GROUPS[g2])
        allw = words + [odd]
        rng.shuffle(allw)
        return pick(rng, ODD_TEMPLATES).format(w=", ".join(allw)), None, cap(odd)
    if r < 0.87:
        cls = pick(rng, sorted(ANIMAL_CLASSES))
        x = pick(rng, ANIMAL_CLASSES[cls])
        return pick(rng, ANIMAL_TEMPLATES).format(x=x, X=cap(x)), None, cls
    if r < 0.95:
        if rng.random() < 0.5:
            q = (
                pick(rng, QUESTIONS).format(thing=pick(rng, Q_THINGS), place=pick(rng, Q_PLACES), name=pick(rng, NAMES))
                + "?"
            )
            return pick(rng, QS_TEMPLATES), q, "Question"
        return pick(rng, QS_TEMPLATES), _sentence(pick(rng, ctx["examples"])), "Statement"
    n = rng.randint(3, 199)
    return pick(rng, EVENODD_TEMPLATES).format(n=n), None, "Even" if n % 2 == 0 else "Odd"


# ---------------------------------------------------------------------------------------------
# extraction
# ---------------------------------------------------------------------------------------------

NAME_SENTENCES = [
    "{a} and {b} met at the {place} to plan the trip.",
    "Yesterday {a} lent {b} a book about birds.",
    "The prize went to {a}, while {b} and {c} shared second place.",
    "{a} called {b} to ask about the homework.",
    "At the weekend, {a} helped {b} and {c} paint the fence.",
    "{a} is the new captain of the team, and {b} is her deputy.",
    "The letter was signed by {a}.",
]
NAME_TEMPLATES = [
    "Extract the names of the people in this text.",
    "Which people are mentioned below?",
    "List the person names that appear in the sentence.",
    "Who is mentioned in this sentence? Give only the names.",
]
NUM_SENTENCES = [  # (sentence, (low, high) range of each number)
    ("The farm has {0} cows, {1} sheep and {2} goats.", [(2, 90), (100, 400), (2, 12)]),
    ("Our class read {0} books in March and {1} in April.", [(5, 40), (5, 40)]),
    ("The bus leaves from stop {0} and takes {1} minutes to reach the centre.", [(2, 60), (5, 45)]),
    ("The recipe needs {0} eggs, {1} grams of flour and {2} spoons of sugar.", [(2, 6), (100, 300), (2, 4)]),
    ("There were {0} people at the match, and {1} of them stayed until the end.", [(300, 900), (100, 299)]),
    ("The hotel has {0} rooms on {1} floors.", [(20, 150), (2, 9)]),
    ("The runner finished the {0}-kilometre race in {1} minutes.", [(5, 21), (25, 130)]),
]
NUM_TEMPLATES = [
    "Extract all the numbers from this text.",
    "Pull out every number in the sentence.",
    "Which numbers appear in the text below?",
    "List the numbers mentioned in this sentence.",
]
DATE_SENTENCES = [
    "The {e1} is on {d1}, and the {e2} is on {d2}.",
    "We moved house on {d1} and started the new job on {d2}.",
    "Tickets go on sale on {d1}; the {e1} itself takes place on {d2}.",
    "The shop will be closed from {d1} until {d2}.",
    "Please send your form before {d1}.",
]
EVENTS = [
    "school play",
    "swimming gala",
    "dentist appointment",
    "book club meeting",
    "piano exam",
    "team dinner",
    "science fair",
]
DATE_TEMPLATES = [
    "Extract the dates from this text.",
    "Which dates are mentioned in the sentence?",
    "Find all the dates in the following sentence.",
    "Pull out the dates mentioned below.",
]
CITY_SENTENCES = [
    "{p} flew from {c1} to {c2} and then took a train to {c3}.",
    "The band will play in {c1} and {c2} next month.",
    "Our company has offices in {c1}, {c2} and {c3}.",
    "{p} grew up in {c1} but now lives in {c2}.",
    "The cheapest flights to {c1} leave from {c2}.",
]
CITY_TEMPLATES = [
    "Which cities are mentioned in this text?",
    "Extract the city names from the sentence.",
    "List every city that appears below.",
    "Find the names of the cities in this sentence.",
]
EMAIL_DOMAINS = ["example.com", "mail.org", "school.edu", "company.net", "post.co.uk"]
EMAIL_SENTENCES = [
    "For more information, contact {n} at {e}.",
    "Please send your photos to {e} by Friday.",
    "If you have any questions, write to {e}.",
    "Our new address for orders is {e}.",
]
EMAIL_TEMPLATES = [
    "Extract the email address from this text.",
    "What email address is given in the sentence?",
    "Pull out the email address.",
]
SHOP_ITEMS = ["notebooks", "mugs", "candles", "umbrellas", "T-shirts", "plant pots", "scarves", "torches"]
PRICE_TEMPLATES = [
    "According to the text, how much does one of the {i2} cost?",
    "What is the price of the {i2}, according to the text?",
]


def _date(rng):
    return f"{rng.randint(1, 28)} {pick(rng, MONTHS)}"


def gen_extraction(rng: random.Random, ctx) -> tuple[str, str | None, str]:
    r = rng.random()
    if r < 0.22:
        s = pick(rng, NAME_SENTENCES)
        full = rng.random() < 0.35
        names = [f"{n} {pick(rng, SURNAMES)}" if full else n for n in rng.sample(NAMES, 3)]
        used = [n for k, n in zip("abc", names) if "{" + k + "}" in s]
        text = s.format(a=names[0], b=names[1], c=names[2], place=pick(rng, ["library", "café", "station", "park"]))
        return pick(rng, NAME_TEMPLATES), text, ", ".join(used)
    if r < 0.4:
        s, ranges = pick(rng, NUM_SENTENCES)
        nums = [rng.randint(lo, hi) for lo, hi in ranges]
        text = s.format(*nums)
        used = nums
        return pick(rng, NUM_TEMPLATES), text, ", ".join(str(n) for n in used)
    if r < 0.55:
        s = pick(rng, DATE_SENTENCES)
        d1, d2 = _date(rng), _date(rng)
        e1, e2 = rng.sample(EVENTS, 2)
        used = [d for k, d in zip(["{d1}", "{d2}"], [d1, d2]) if k in s]
        return pick(rng, DATE_TEMPLATES), s.format(d1=d1, d2=d2, e1=e1, e2=e2), ", ".join(used)
    if r < 0.73:
        s = pick(rng, CITY_SENTENCES)
        cs = rng.sample(CITIES, 3)
        used = [c for k, c in zip(["{c1}", "{c2}", "{c3}"], cs) if k in s]
        return pick(rng, CITY_TEMPLATES), s.format(p=pick(rng, NAMES), c1=cs[0], c2=cs[1], c3=cs[2]), ", ".join(used)
    if r < 0.85:
        n = pick(rng, NAMES)
        e = (
            f"{n.lower()}.{pick(rng, SURNAMES).lower()}@{pick(rng, EMAIL_DOMAINS)}"
            if rng.random() < 0.6
            else f"{pick(rng, ['info', 'orders', 'team', 'office', 'tickets'])}@{pick(rng, EMAIL_DOMAINS)}"
        )
        return pick(rng, EMAIL_TEMPLATES), pick(rng, EMAIL_SENTENCES).format(n=n, e=e), e
    i1, i2 = rng.sample(SHOP_ITEMS, 2)
    p1, p2 = rng.randint(2, 30), rng.randint(2, 30)
    text = f"The gift shop sells {i1} for {p1} dollars each and {i2} for {p2} dollars each. It is open every day except Monday."
    return pick(rng, PRICE_TEMPLATES).format(i2=i2), text, f"{p2} dollars."


# ---------------------------------------------------------------------------------------------
# brainstorming
# ---------------------------------------------------------------------------------------------

BRAIN = {
    "kinds of fruit": [
        "Apple",
        "Banana",
        "Mango",
        "Pineapple",
        "Strawberry",
        "Pear",
        "Cherry",
        "Watermelon",
        "Grape",
        "Kiwi",
    ],
    "vegetables that grow underground": [
        "Carrot",
        "Potato",
        "Beetroot",
        "Radish",
        "Onion",
        "Turnip",
        "Parsnip",
        "Garlic",
    ],
    "wild animals that live in Africa": [
        "Lion",
        "Elephant",
        "Giraffe",
        "Zebra",
        "Hippo",
        "Cheetah",
        "Gorilla",
        "Rhino",
        "Leopard",
    ],
    "ways to save energy at home": [
        "Turn off lights when you leave a room",
        "Unplug chargers that are not in use",
        "Use LED light bulbs",
        "Dry clothes outside instead of in a dryer",
        "Lower the heating by one degree",
        "Take shorter showers",
        "Only run the dishwasher when it is full",
        "Close curtains at night to keep heat in",
    ],
    "tips for studying for an exam": [
        "Start revising early",
        "Make a study timetable",
        "Take short breaks every hour",
        "Test yourself with past papers",
        "Get enough sleep",
        "Study in a quiet place",
        "Explain the topic to a friend",
        "Put your phone in another room",
    ],
    "things to take to the beach": [
        "Sun cream",
        "Towel",
        "Swimsuit",
        "Sunglasses",
        "Water bottle",
        "Hat",
        "Beach umbrella",
        "A good book",
        "Snacks",
    ],
    "indoor hobbies": [
        "Reading",
        "Knitting",
        "Painting",
        "Playing chess",
        "Baking",
        "Doing jigsaw puzzles",
        "Learning a language",
        "Playing the piano",
        "Writing a diary",
    ],
    "outdoor activities for a sunny day": [
        "Go for a bike ride",
        "Have a picnic",
        "Play frisbee in the park",
        "Go swimming",
        "Visit the zoo",
        "Walk along the river",
        "Play tennis",
        "Fly a kite",
    ],
    "kitchen tools": [
        "Knife",
        "Chopping board",
        "Whisk",
        "Wooden spoon",
        "Frying pan",
        "Grater",
        "Sieve",
        "Rolling pin",
        "Ladle",
    ],
    "musical instruments": ["Piano", "Guitar", "Drums", "Saxophone", "Cello", "Harp", "Clarinet", "Accordion", "Banjo"],
    "jobs in a hospital": [
        "Doctor",
        "Nurse",
        "Surgeon",
        "Pharmacist",
        "Cleaner",
        "Porter",
        "Radiographer",
        "Receptionist",
        "Midwife",
    ],
    "team sports": [
        "Football",
        "Basketball",
        "Volleyball",
        "Rugby",
        "Hockey",
        "Cricket",
        "Baseball",
        "Water polo",
        "Handball",
    ],
    "ways to stay healthy": [
        "Eat plenty of fruit and vegetables",
        "Exercise for thirty minutes a day",
        "Drink enough water",
        "Sleep seven to eight hours a night",
        "Wash your hands often",
        "Spend time outdoors",
        "Limit sugary drinks",
        "See friends regularly",
    ],
    "gift ideas for a friend who loves cooking": [
        "A new cookbook",
        "A set of spices",
        "A cast-iron pan",
        "A cooking class",
        "A nice apron",
        "A herb garden kit",
        "A good chef's knife",
        "Homemade jam",
    ],
    "names for a pet dog": ["Max", "Bella", "Charlie", "Luna", "Buddy", "Daisy", "Rocky", "Milo", "Poppy", "Biscuit"],
    "things to do on a rainy day": [
        "Watch a film",
        "Bake a cake",
        "Play a board game",
        "Read a book",
        "Build a blanket fort",
        "Do a jigsaw puzzle",
        "Visit a museum",
        "Write a letter to a friend",
    ],
    "items in a school bag": [
        "Pencil case",
        "Exercise books",
        "Water bottle",
        "Lunch box",
        "Calculator",
        "Ruler",
        "Reading book",
        "Homework diary",
    ],
    "breakfast foods": [
        "Porridge",
        "Scrambled eggs",
        "Toast with jam",
        "Pancakes",
        "Yogurt with fruit",
        "Cereal with milk",
        "Croissant",
        "Boiled eggs",
    ],
    "countries in Europe": [
        "France",
        "Spain",
        "Germany",
        "Italy",
        "Poland",
        "Sweden",
        "Greece",
        "Portugal",
        "Ireland",
        "Norway",
    ],
    "colours of the rainbow": ["Red", "Orange", "Yellow", "Green", "Blue", "Indigo", "Violet"],
    "ways to reduce food waste": [
        "Plan meals before shopping",
        "Make a shopping list",
        "Freeze leftovers",
        "Use older food first",
        "Store fruit and vegetables properly",
        "Cook smaller portions",
        "Turn leftovers into soup",
        "Compost peelings",
    ],
    "questions to ask a new classmate": [
        "Where are you from?",
        "What is your favourite subject?",
        "Do you have any pets?",
        "What do you like to do at the weekend?",
        "What music do you like?",
        "Do you play any sports?",
        "What is your favourite food?",
    ],
    "things you can recycle": [
        "Glass bottles",
        "Newspapers",
        "Cardboard boxes",
        "Aluminium cans",
        "Plastic bottles",
        "Old clothes",
        "Batteries",
        "Magazines",
    ],
    "animals that live in the ocean": [
        "Shark",
        "Octopus",
        "Jellyfish",
        "Seal",
        "Starfish",
        "Crab",
        "Sea turtle",
        "Squid",
        "Seahorse",
    ],
    "ways to be kind to a neighbour": [
        "Say hello when you see them",
        "Offer to carry heavy shopping",
        "Share vegetables from your garden",
        "Keep the noise down at night",
        "Bring them a card on their birthday",
        "Help clear snow from their path",
        "Invite them for a cup of tea",
    ],
    "reasons to learn a second language": [
        "It helps when you travel",
        "It improves your memory",
        "It opens up more jobs",
        "You can make friends from other countries",
        "You can enjoy films and books in the original",
        "It helps you understand other cultures",
        "It keeps your brain active",
    ],
    "things to pack for a business trip": [
        "Laptop and charger",
        "Passport",
        "Smart clothes",
        "Phone charger",
        "Notebook and pen",
        "Toiletries",
        "Business cards",
        "Travel adapter",
    ],
    "planets in our solar system": ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"],
    "ways to relax after a long day": [
        "Take a warm bath",
        "Go for a short walk",
        "Listen to calm music",
        "Read a few chapters of a book",
        "Call a friend",
        "Do some gentle stretching",
        "Cook a simple meal",
        "Go to bed early",
    ],
    "birthday party themes for children": [
        "Pirates",
        "Dinosaurs",
        "Space",
        "Superheroes",
        "Under the sea",
        "Jungle safari",
        "Fairy tales",
        "Circus",
    ],
    "ingredients for a fruit salad": [
        "Strawberries",
        "Grapes",
        "Apple",
        "Banana",
        "Orange",
        "Blueberries",
        "Melon",
        "Kiwi",
    ],
    "tools you need to build a birdhouse": [
        "Saw",
        "Hammer",
        "Nails",
        "Wood glue",
        "Sandpaper",
        "Measuring tape",
        "Pencil",
        "Drill",
    ],
}
BRAIN_TEMPLATES = [
    "List {n} {c}.",
    "Name {n} {c}.",
    "Give me {n} {c}.",
    "What are {n} {c}?",
    "Write a list of {n} {c}.",
    "Can you think of {n} {c}?",
    "Suggest {n} {c}.",
    "Brainstorm {n} {c}.",
    "Make a list of {n} {c}.",
]
BULLET_SUFFIX = [" Use bullet points.", " Put them in a bulleted list.", " Answer with bullet points."]


def gen_brainstorming(rng: random.Random, ctx) -> tuple[str, str | None, str]:
    c = pick(rng, sorted(BRAIN))
    items = BRAIN[c]
    n = rng.randint(3, min(6, len(items)))
    chosen = rng.sample(items, n)
    ins = pick(rng, BRAIN_TEMPLATES).format(n=NUM_WORDS[n] if rng.random() < 0.8 else n, c=c)
    ins = cap(ins)
    if rng.random() < 0.2:
        ins += pick(rng, BULLET_SUFFIX)
        return ins, None, "\n".join(f"- {x}" for x in chosen)
    return ins, None, "\n".join(f"{i}. {x}" for i, x in enumerate(chosen, 1))


# ---------------------------------------------------------------------------------------------
# math
# ---------------------------------------------------------------------------------------------

COUNT_ITEMS = [
    "apples",
    "stickers",
    "marbles",
    "stamps",
    "cards",
    "shells",
    "balloons",
    "cookies",
    "eggs",
    "bananas",
    "coins",
    "beads",
]
CONTAINERS = [
    ("boxes", "box"),
    ("bags", "bag"),
    ("baskets", "basket"),
    ("jars", "jar"),
    ("trays", "tray"),
    ("packets", "packet"),
]
ADD_T = [
    "{name} has {a} {items} and gets {b} more. How many {items} does {name} have now?",
    "There are {a} {items} on the table. {name} puts {b} more on it. How many {items} are on the table now?",
    "{name} collected {a} {items} on Monday and {b} on Tuesday. How many {items} did {name} collect altogether?",
    "A class has {a} girls and {b} boys. How many pupils are in the class?",
    "{name} read {a} pages in the morning and {b} pages in the evening. How many pages did {name} read in total?",
    "A farmer picks {a} pumpkins on one day and {b} the next day. How many pumpkins has the farmer picked?",
]
SUB_T = [
    "{name} had {a} {items} and gave {b} to a friend. How many {items} does {name} have left?",
    "There are {a} {items} in a box. {name} takes out {b}. How many {items} are still in the box?",
    "{name} bought {a} {items} and lost {b} on the way home. How many are left?",
    "A bus has {a} passengers. At the next stop, {b} get off and nobody gets on. How many passengers are on the bus now?",
    "There were {a} birds on a fence. {b} flew away. How many birds are still on the fence?",
    "{name} is reading a book with {a} pages and has read {b} of them. How many pages are left to read?",
    "A class has {a} pupils, and {b} of them are girls. How many boys are in the class?",
    "{name} has {a} {items} and {name2} has {b}. How many more {items} does {name} have than {name2}?",
    "A shop had {a} umbrellas and sold {b} of them on a rainy day. How many umbrellas does the shop have now?",
]
MUL_T = [
    "There are {a} {cont} with {b} {items} in each. How many {items} are there in total?",
    "{name} buys {a} {cont} of {items}. Each one holds {b}. How many {items} does {name} buy?",
    "Each of {a} children has {b} {items}. How many {items} do they have altogether?",
    "A garden has {a} rows of tulips with {b} tulips in each row. How many tulips are there?",
]
DIV_T = [
    "{name} packs {n} {items} into {m} {cont}, with the same number in each. How many {items} go in each {c1}?",
    "{n} {items} are put into {m} equal groups. How many {items} are in each group?",
    "{name} has {n} {items} and puts them into {m} {cont} equally. How many {items} are in each {c1}?",
    "{name} shares {n} {items} equally among {m} children. How many {items} does each child get?",
    "A rope {n} metres long is cut into {m} pieces of the same length. How long is each piece in metres?",
    "{n} people need to travel in cars that carry {m} people each. How many full cars are needed?",
    "{name} saves the same amount every week and has {n} dollars after {m} weeks. How much does {name} save each week?",
]
TWO_STEP_T = [
    "{name} had {a} {items}, bought {b} more and then gave {c} away. How many {items} does {name} have now?",
    "There were {a} people on a train. At the first stop {b} got on, and at the second stop {c} got off. How many people are on the train now?",
]
BARE = {
    "+": [
        "What is {a} + {b}?",
        "Calculate {a} + {b}.",
        "What is the sum of {a} and {b}?",
        "Compute {a} plus {b}.",
        "Add {a} and {b}.",
        "How much is {a} plus {b}?",
        "{a} + {b} = ?",
        "Work out the total of {a} and {b}.",
    ],
    "-": [
        "What is {a} - {b}?",
        "Work out {a} - {b}.",
        "What is {a} minus {b}?",
        "Subtract {b} from {a}.",
        "Take {b} away from {a}. What is left?",
        "What is the difference between {a} and {b}?",
        "{a} - {b} = ?",
        "How much is {a} take away {b}?",
    ],
    "×": [
        "What is {a} × {b}?",
        "Calculate {a} × {b}.",
        "What is the product of {a} and {b}?",
        "What is {a} multiplied by {b}?",
        "{a} × {b} = ?",
        "How much is {a} times {b}?",
    ],
    "÷": [
        "What is {a} ÷ {b}?",
        "Work out {a} ÷ {b}.",
        "What is {a} divided by {b}?",
        "Divide {a} by {b}.",
        "{a} ÷ {b} = ?",
        "How many times does {b} go into {a}?",
        "If you split {a} into {b} equal parts, how big is each part?",
    ],
}
PRICE_T = [
    "A {thing} costs {p} dollars. How much do {n} of them cost?",
    "One {thing} costs {p} dollars. What is the price of {n} {things}?",
]
CHANGE_T = ["{name} pays for a {thing} that costs {p} dollars with a {n}-dollar note. How much change does {name} get?"]
PRICE_THINGS = [
    ("ticket", "tickets"),
    ("sandwich", "sandwiches"),
    ("notebook", "notebooks"),
    ("bus pass", "bus passes"),
    ("plant", "plants"),
]
LEG_T = [
    "How many legs do {n} {animals} have altogether?",
    "A farmer has {n} {animals}. How many legs do they have in total?",
]
LEG_ANIMALS = [("dogs", 4), ("chickens", 2), ("cows", 4), ("ducks", 2), ("spiders", 8), ("horses", 4)]
# number pairs of the held-out items; never generated
HELD_OUT_PAIRS = {("-", 24, 9), ("+", 15, 27), ("+", 27, 15), ("÷", 40, 8), ("×", 3, 4), ("×", 4, 3)}


def _ans(expr: str, val: int) -> str:
    """``<working> = N. The answer is N.``; the working is re-computed and must equal ``val``."""
    assert re.fullmatch(r"[0-9 +\-×÷]+", expr), expr
    got = eval(expr.replace("×", "*").replace("÷", "/"))  # digits and operators only (checked above)
    assert got == val and float(val).is_integer() and val >= 0, (expr, val, got)
    return f"{expr} = {val}. The answer is {val}."


def _held_out(op: str, a: int, b: int) -> bool:
    return (op, a, b) in HELD_OUT_PAIRS


def gen_math(rng: random.Random, ctx) -> tuple[str, str | None, str] | None:
    r = rng.random()
    name, name2 = rng.sample(NAMES, 2)
    items = pick(rng, COUNT_ITEMS)
    cont, c1 = pick(rng, CONTAINERS)
    if r < 0.13:  # addition word problems, one- and two-digit
        a, b = (
            (rng.randint(2, 20), rng.randint(2, 20))
            if rng.random() < 0.4
            else (rng.randint(10, 60), rng.randint(10, 40))
        )
        if _held_out("+", a, b):
            return None
        return pick(rng, ADD_T).format(name=name, a=a, b=b, items=items), None, _ans(f"{a} + {b}", a + b)
    if r < 0.30:  # subtraction word problems, mostly small numbers
        a = rng.randint(6, 30) if rng.random() < 0.6 else rng.randint(20, 80)
        b = rng.randint(1, a - 1)
        if _held_out("-", a, b):
            return None
        return pick(rng, SUB_T).format(name=name, name2=name2, a=a, b=b, items=items), None, _ans(f"{a} - {b}", a - b)
    if r < 0.40:
        a, b = rng.randint(2, 10), rng.randint(2, 10)
        if _held_out("×", a, b):
            return None
        return pick(rng, MUL_T).format(name=name, a=a, b=b, items=items, cont=cont), None, _ans(f"{a} × {b}", a * b)
    if r < 0.54:  # division word problems with exact results
        m, q = rng.randint(2, 9), rng.randint(2, 10)
        n = m * q
        if _held_out("÷", n, m):
            return None
        return pick(rng, DIV_T).format(name=name, n=n, m=m, items=items, cont=cont, c1=c1), None, _ans(f"{n} ÷ {m}", q)
    if r < 0.58:
        a, b = rng.randint(5, 30), rng.randint(2, 20)
        c = rng.randint(1, a + b - 1)
        t = pick(rng, TWO_STEP_T)
        return t.format(name=name, a=a, b=b, c=c, items=items), None, _ans(f"{a} + {b} - {c}", a + b - c)
    if r < 0.90:  # bare arithmetic: small-number practice and two-digit addition
        op = pick(rng, ["+", "+", "-", "-", "×", "÷", "÷"])
        if op == "+":
            a, b = (
                (rng.randint(10, 99), rng.randint(10, 99))
                if rng.random() < 0.6
                else (rng.randint(1, 20), rng.randint(1, 20))
            )
            v = a + b
        elif op == "-":
            a = rng.randint(5, 30) if rng.random() < 0.6 else rng.randint(31, 99)
            b = rng.randint(1, a - 1)
            v = a - b
        elif op == "×":
            a, b = rng.randint(2, 12), rng.randint(2, 12)
            v = a * b
        else:
            b, v = rng.randint(2, 10), rng.randint(1, 10)
            a = b * v
        if _held_out(op, a, b):
            return None
        return pick(rng, BARE[op]).format(a=a, b=b), None, _ans(f"{a} {op} {b}", v)
    if r < 0.94:
        (thing, things), p, n = pick(rng, PRICE_THINGS), rng.randint(2, 15), rng.randint(2, 9)
        return pick(rng, PRICE_T).format(thing=thing, things=things, p=p, n=n), None, _ans(f"{n} × {p}", n * p)
    if r < 0.97:
        (thing, _), note = pick(rng, PRICE_THINGS), pick(rng, [10, 20, 50])
        p = rng.randint(1, note - 1)
        return pick(rng, CHANGE_T).format(name=name, thing=thing, p=p, n=note), None, _ans(f"{note} - {p}", note - p)
    (animals, legs), n = pick(rng, LEG_ANIMALS), rng.randint(2, 9)
    return pick(rng, LEG_T).format(n=n, animals=animals), None, _ans(f"{n} × {legs}", n * legs)


# ---------------------------------------------------------------------------------------------
# coding
# ---------------------------------------------------------------------------------------------

# (description in the third person "returns ...", function name, code)
CODE_SPECS = [
    ("returns the square of a number", "square", "def square(n):\n    return n * n"),
    ("returns the cube of a number", "cube", "def cube(n):\n    return n ** 3"),
    ("checks whether a number is even", "is_even", "def is_even(n):\n    return n % 2 == 0"),
    ("checks whether a number is odd", "is_odd", "def is_odd(n):\n    return n % 2 == 1"),
    ("reverses a string", "reverse_string", "def reverse_string(s):\n    return s[::-1]"),
    (
        "returns the sum of a list of numbers",
        "sum_list",
        "def sum_list(numbers):\n    total = 0\n    for n in numbers:\n        total += n\n    return total",
    ),
    (
        "returns the average of a list of numbers",
        "average",
        "def average(numbers):\n    return sum(numbers) / len(numbers)",
    ),
    ("returns the largest number in a list", "largest", "def largest(numbers):\n    return max(numbers)"),
    ("returns the smallest number in a list", "smallest", "def smallest(numbers):\n    return min(numbers)"),
    (
        "returns the smaller of two numbers",
        "smaller",
        "def smaller(a, b):\n    if a < b:\n        return a\n    return b",
    ),
    (
        "counts the vowels in a string",
        "count_vowels",
        'def count_vowels(s):\n    return sum(1 for ch in s.lower() if ch in "aeiou")',
    ),
    (
        "converts a temperature from Celsius to Fahrenheit",
        "celsius_to_fahrenheit",
        "def celsius_to_fahrenheit(c):\n    return c * 9 / 5 + 32",
    ),
    (
        "converts a temperature from Fahrenheit to Celsius",
        "fahrenheit_to_celsius",
        "def fahrenheit_to_celsius(f):\n    return (f - 32) * 5 / 9",
    ),
    (
        "returns the area of a rectangle given its width and height",
        "rectangle_area",
        "def rectangle_area(width, height):\n    return width * height",
    ),
    (
        "returns the area of a triangle given its base and height",
        "triangle_area",
        "def triangle_area(base, height):\n    return base * height / 2",
    ),
    (
        "returns the area of a circle given its radius",
        "circle_area",
        "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius ** 2",
    ),
    (
        "returns the factorial of a number",
        "factorial",
        "def factorial(n):\n    result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result",
    ),
    ("counts the words in a sentence", "count_words", "def count_words(sentence):\n    return len(sentence.split())"),
    ("converts a string to upper case", "to_upper", "def to_upper(s):\n    return s.upper()"),
    ("removes all spaces from a string", "remove_spaces", 'def remove_spaces(s):\n    return s.replace(" ", "")'),
    (
        "returns a list of the squares of the numbers in a list",
        "squares",
        "def squares(numbers):\n    return [n * n for n in numbers]",
    ),
    (
        "keeps only the even numbers from a list",
        "even_numbers",
        "def even_numbers(numbers):\n    return [n for n in numbers if n % 2 == 0]",
    ),
    (
        "returns the absolute value of a number",
        "absolute",
        "def absolute(n):\n    if n < 0:\n        return -n\n    return n",
    ),
    ("returns the last item of a list", "last_item", "def last_item(items):\n    return items[-1]"),
    ("returns the first item of a list", "first_item", "def first_item(items):\n    return items[0]"),
    ("converts kilometres to miles", "km_to_miles", "def km_to_miles(km):\n    return km * 0.621371"),
    ("converts minutes to seconds", "minutes_to_seconds", "def minutes_to_seconds(minutes):\n    return minutes * 60"),
    (
        'returns a greeting such as "Hello, Anna!" for a given name',
        "greet",
        'def greet(name):\n    return f"Hello, {name}!"',
    ),
    (
        "checks whether a string is a palindrome",
        "is_palindrome",
        'def is_palindrome(s):\n    s = s.lower().replace(" ", "")\n    return s == s[::-1]',
    ),
    (
        "counts how many times an item appears in a list",
        "count_item",
        "def count_item(items, item):\n    return items.count(item)",
    ),
    (
        "joins a list of words into one string separated by spaces",
        "join_words",
        'def join_words(words):\n    return " ".join(words)',
    ),
    ("checks whether a list is empty", "is_empty", "def is_empty(items):\n    return len(items) == 0"),
    ("returns the sum of the numbers from 1 to n", "sum_to_n", "def sum_to_n(n):\n    return n * (n + 1) // 2"),
    ("checks whether a number is positive", "is_positive", "def is_positive(n):\n    return n > 0"),
    (
        "sorts a list of numbers from smallest to largest",
        "sort_numbers",
        "def sort_numbers(numbers):\n    return sorted(numbers)",
    ),
    (
        "returns the unique items of a list in sorted order",
        "unique_sorted",
        "def unique_sorted(items):\n    return sorted(set(items))",
    ),
    (
        "capitalises the first letter of every word in a string",
        "title_case",
        "def title_case(s):\n    return s.title()",
    ),
    ("returns the last character of a string", "last_char", "def last_char(s):\n    return s[-1]"),
    (
        "returns the length of each word in a sentence",
        "word_lengths",
        "def word_lengths(sentence):\n    return [len(word) for word in sentence.split()]",
    ),
    ("swaps two values and returns them as a tuple", "swap", "def swap(a, b):\n    return b, a"),
    ("counts the digits of a whole number", "count_digits", "def count_digits(n):\n    return len(str(abs(n)))"),
    (
        "checks whether a year is a leap year",
        "is_leap_year",
        "def is_leap_year(year):\n    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)",
    ),
    (
        "returns the longest word in a sentence",
        "longest_word",
        "def longest_word(sentence):\n    return max(sentence.split(), key=len)",
    ),
    ("checks whether a string contains only digits", "only_digits", "def only_digits(s):\n    return s.isdigit()"),
]
PARAM_SPECS = [  # (description with {k}, name with {k}, code with {k}, k values)
    ("multiplies a number by {k}", "multiply_by_{k}", "def multiply_by_{k}(n):\n    return n * {k}", [3, 4, 5, 7, 10]),
    ("adds {k} to a number", "add_{k}", "def add_{k}(n):\n    return n + {k}", [1, 5, 10, 100]),
    (
        "checks whether a number is divisible by {k}",
        "is_divisible_by_{k}",
        "def is_divisible_by_{k}(n):\n    return n % {k} == 0",
        [3, 5, 7, 9],
    ),
    (
        "returns the first {k} characters of a string",
        "first_{k}_chars",
        "def first_{k}_chars(s):\n    return s[:{k}]",
        [2, 3, 5],
    ),
    ("repeats a string {k} times", "repeat_{k}_times", "def repeat_{k}_times(s):\n    return s * {k}", [2, 3, 4]),
    (
        "returns a list of the numbers from 1 to {k}",
        "numbers_to_{k}",
        "def numbers_to_{k}():\n    return list(range(1, {k1}))",
        [5, 10, 20],
    ),
]
INFINITIVE = {
    "returns": "return",
    "checks": "check",
    "reverses": "reverse",
    "counts": "count",
    "converts": "convert",
    "removes": "remove",
    "keeps": "keep",
    "joins": "join",
    "sorts": "sort",
    "capitalises": "capitalise",
    "swaps": "swap",
    "multiplies": "multiply",
    "adds": "add",
    "repeats": "repeat",
}
CODE_TEMPLATES = [
    "Write a Python function that {d3}.",
    "Write a Python function called {name} that {d3}.",
    "Create a function in Python to {dinf}.",
    "Implement {name} in Python. It should {dinf}.",
    "I need a Python function to {dinf}.",
    "Give me Python code for a function that {d3}.",
    "Show a short Python function that {d3}.",
    "Python: write {name}, which {d3}.",
]


def _all_code_specs():
    out = list(CODE_SPECS)
    for d, name, code, ks in PARAM_SPECS:
        for k in ks:
            out.append((d.format(k=k), name.format(k=k), code.format(k=k, k1=k + 1)))
    return out


def gen_coding(rng: random.Random, ctx) -> tuple[str, str | None, str]:
    d3, name, code = pick(rng, ctx["code_specs"])
    first, rest = d3.split(" ", 1)
    dinf = f"{INFINITIVE[first]} {rest}"
    ins = pick(rng, CODE_TEMPLATES).format(d3=d3, dinf=dinf, name=name)
    return ins, None, f"```python\n{code}\n```"


# ---------------------------------------------------------------------------------------------
# translation (hand-written phrase table)
# ---------------------------------------------------------------------------------------------

PHRASES = [  # English | French | Spanish | German
    ("Good morning", "Bonjour", "Buenos días", "Guten Morgen"),
    ("Good night", "Bonne nuit", "Buenas noches", "Gute Nacht"),
    ("Thank you very much", "Merci beaucoup", "Muchas gracias", "Vielen Dank"),
    ("Please", "S'il vous plaît", "Por favor", "Bitte"),
    ("How are you?", "Comment allez-vous ?", "¿Cómo estás?", "Wie geht es dir?"),
    (
        "Where is the bus stop?",
        "Où est l'arrêt de bus ?",
        "¿Dónde está la parada de autobús?",
        "Wo ist die Bushaltestelle?",
    ),
    ("I am hungry", "J'ai faim", "Tengo hambre", "Ich habe Hunger"),
    ("I am thirsty", "J'ai soif", "Tengo sed", "Ich habe Durst"),
    ("What time is it?", "Quelle heure est-il ?", "¿Qué hora es?", "Wie spät ist es?"),
    ("My name is Anna", "Je m'appelle Anna", "Me llamo Anna", "Ich heiße Anna"),
    ("I don't understand", "Je ne comprends pas", "No entiendo", "Ich verstehe nicht"),
    ("See you tomorrow", "À demain", "Hasta mañana", "Bis morgen"),
    ("Happy birthday", "Joyeux anniversaire", "Feliz cumpleaños", "Alles Gute zum Geburtstag"),
    ("The weather is nice today", "Il fait beau aujourd'hui", "Hace buen tiempo hoy", "Das Wetter ist heute schön"),
    ("I like reading books", "J'aime lire des livres", "Me gusta leer libros", "Ich lese gern Bücher"),
    ("Where is the bathroom?", "Où sont les toilettes ?", "¿Dónde está el baño?", "Wo ist die Toilette?"),
    ("How much does it cost?", "Combien ça coûte ?", "¿Cuánto cuesta?", "Wie viel kostet das?"),
    (
        "I would like a coffee, please",
        "Je voudrais un café, s'il vous plaît",
        "Quisiera un café, por favor",
        "Ich hätte gern einen Kaffee, bitte",
    ),
    ("Do you speak English?", "Parlez-vous anglais ?", "¿Hablas inglés?", "Sprechen Sie Englisch?"),
    (
        "The book is on the table",
        "Le livre est sur la table",
        "El libro está en la mesa",
        "Das Buch liegt auf dem Tisch",
    ),
    (
        "I live in a small town",
        "J'habite dans une petite ville",
        "Vivo en un pueblo pequeño",
        "Ich wohne in einer kleinen Stadt",
    ),
    ("The dog is sleeping", "Le chien dort", "El perro está durmiendo", "Der Hund schläft"),
    ("We are going to the beach", "Nous allons à la plage", "Vamos a la playa", "Wir gehen an den Strand"),
    ("The red car", "La voiture rouge", "El coche rojo", "Das rote Auto"),
    ("I have two brothers", "J'ai deux frères", "Tengo dos hermanos", "Ich habe zwei Brüder"),
    ("Good luck", "Bonne chance", "Buena suerte", "Viel Glück"),
    ("Welcome", "Bienvenue", "Bienvenido", "Willkommen"),
    ("Excuse me", "Excusez-moi", "Disculpe", "Entschuldigung"),
    ("I am tired", "Je suis fatigué", "Estoy cansado", "Ich bin müde"),
    ("It is very cold", "Il fait très froid", "Hace mucho frío", "Es ist sehr kalt"),
    (
        "Open the window, please",
        "Ouvrez la fenêtre, s'il vous plaît",
        "Abra la ventana, por favor",
        "Öffnen Sie bitte das Fenster",
    ),
    (
        "The children are at school",
        "Les enfants sont à l'école",
        "Los niños están en la escuela",
        "Die Kinder sind in der Schule",
    ),
    ("I need a doctor", "J'ai besoin d'un médecin", "Necesito un médico", "Ich brauche einen Arzt"),
    ("The shop is closed", "Le magasin est fermé", "La tienda está cerrada", "Das Geschäft ist geschlossen"),
    (
        "My favourite colour is blue",
        "Ma couleur préférée est le bleu",
        "Mi color favorito es el azul",
        "Meine Lieblingsfarbe ist Blau",
    ),
    ("Nice to meet you", "Enchanté", "Mucho gusto", "Freut mich"),
    ("I am a student", "Je suis étudiant", "Soy estudiante", "Ich bin Student"),
    ("Where do you live?", "Où habites-tu ?", "¿Dónde vives?", "Wo wohnst du?"),
    ("The bread is fresh", "Le pain est frais", "El pan está fresco", "Das Brot ist frisch"),
    ("Have a nice day", "Bonne journée", "Que tengas un buen día", "Schönen Tag noch"),
    ("Yes, of course", "Oui, bien sûr", "Sí, claro", "Ja, natürlich"),
    ("I'm sorry", "Je suis désolé", "Lo siento", "Es tut mir leid"),
    ("The train is late", "Le train est en retard", "El tren llega tarde", "Der Zug hat Verspätung"),
    ("One, two, three", "Un, deux, trois", "Uno, dos, tres", "Eins, zwei, drei"),
    ("The house is big", "La maison est grande", "La casa es grande", "Das Haus ist groß"),
    ("I like apples", "J'aime les pommes", "Me gustan las manzanas", "Ich mag Äpfel"),
    ("Today is Monday", "Aujourd'hui, c'est lundi", "Hoy es lunes", "Heute ist Montag"),
    ("Goodbye", "Au revoir", "Adiós", "Auf Wiedersehen"),
    ("The sun is shining", "Le soleil brille", "Brilla el sol", "Die Sonne scheint"),
    ("I am ten years old", "J'ai dix ans", "Tengo diez años", "Ich bin zehn Jahre alt"),
]
LANGS = ["French", "Spanish", "German"]
TRANS_TEMPLATES = [
    ("Translate into {lang}: {en}", False),
    ("Translate this phrase into {lang}.", True),
    ('How do you say "{en}" in {lang}?', False),
    ('What is "{en}" in {lang}?', False),
    ('Give the {lang} translation of "{en}".', False),
    ("Say this in {lang}.", True),
    ("Translate the following English text to {lang}.", True),
    ("{lang} translation, please: {en}", False),
]


# Single words and short phrases (English | French | Spanish | German), hand-written.
WORDS = [
    # animals
    ("dog", "chien", "perro", "Hund"),
    ("horse", "cheval", "caballo", "Pferd"),
    ("bird", "oiseau", "pájaro", "Vogel"),
    ("fish", "poisson", "pez", "Fisch"),
    ("cow", "vache", "vaca", "Kuh"),
    ("mouse", "souris", "ratón", "Maus"),
    ("rabbit", "lapin", "conejo", "Kaninchen"),
    ("pig", "cochon", "cerdo", "Schwein"),
    ("sheep", "mouton", "oveja", "Schaf"),
    ("lion", "lion", "león", "Löwe"),
    ("bear", "ours", "oso", "Bär"),
    ("duck", "canard", "pato", "Ente"),
    # colours
    ("red", "rouge", "rojo", "rot"),
    ("blue", "bleu", "azul", "blau"),
    ("green", "vert", "verde", "grün"),
    ("yellow", "jaune", "amarillo", "gelb"),
    ("black", "noir", "negro", "schwarz"),
    ("white", "blanc", "blanco", "weiß"),
    ("orange", "orange", "naranja", "orange"),
    ("grey", "gris", "gris", "grau"),
    # numbers
    ("one", "un", "uno", "eins"),
    ("two", "deux", "dos", "zwei"),
    ("three", "trois", "tres", "drei"),
    ("four", "quatre", "cuatro", "vier"),
    ("five", "cinq", "cinco", "fünf"),
    ("six", "six", "seis", "sechs"),
    ("seven", "sept", "siete", "sieben"),
    ("eight", "huit", "ocho", "acht"),
    ("nine", "neuf", "nueve", "neun"),
    ("ten", "dix", "diez", "zehn"),
    ("twenty", "vingt", "veinte", "zwanzig"),
    ("hundred", "cent", "cien", "hundert"),
    # food and drink
    ("bread", "pain", "pan", "Brot"),
    ("apple", "pomme", "manzana", "Apfel"),
    ("cheese", "fromage", "queso", "Käse"),
    ("milk", "lait", "leche", "Milch"),
    ("egg", "œuf", "huevo", "Ei"),
    ("rice", "riz", "arroz", "Reis"),
    ("coffee", "café", "café", "Kaffee"),
    ("tea", "thé", "té", "Tee"),
    ("sugar", "sucre", "azúcar", "Zucker"),
    ("soup", "soupe", "sopa", "Suppe"),
    ("chicken", "poulet", "pollo", "Hähnchen"),
    ("strawberry", "fraise", "fresa", "Erdbeere"),
    # family
    ("mother", "mère", "madre", "Mutter"),
    ("father", "père", "padre", "Vater"),
    ("sister", "sœur", "hermana", "Schwester"),
    ("brother", "frère", "hermano", "Bruder"),
    ("grandmother", "grand-mère", "abuela", "Großmutter"),
    ("grandfather", "grand-père", "abuelo", "Großvater"),
    ("son", "fils", "hijo", "Sohn"),
    ("daughter", "fille", "hija", "Tochter"),
    ("family", "famille", "familia", "Familie"),
    ("friend", "ami", "amigo", "Freund"),
    # common verbs
    ("to eat", "manger", "comer", "essen"),
    ("to drink", "boire", "beber", "trinken"),
    ("to sleep", "dormir", "dormir", "schlafen"),
    ("to speak", "parler", "hablar", "sprechen"),
    ("to read", "lire", "leer", "lesen"),
    ("to write", "écrire", "escribir", "schreiben"),
    ("to go", "aller", "ir", "gehen"),
    ("to come", "venir", "venir", "kommen"),
    ("to see", "voir", "ver", "sehen"),
    ("to buy", "acheter", "comprar", "kaufen"),
    ("to sing", "chanter", "cantar", "singen"),
    ("to play", "jouer", "jugar", "spielen"),
    # everyday things
    ("house", "maison", "casa", "Haus"),
    ("book", "livre", "libro", "Buch"),
    ("school", "école", "escuela", "Schule"),
    ("sun", "soleil", "sol", "Sonne"),
    ("moon", "lune", "luna", "Mond"),
    ("tree", "arbre", "árbol", "Baum"),
    ("car", "voiture", "coche", "Auto"),
    ("door", "porte", "puerta", "Tür"),
]
SHORT_PHRASES = [
    ("Hello", "Bonjour", "Hola", "Hallo"),
    ("Good afternoon", "Bon après-midi", "Buenas tardes", "Guten Tag"),
    ("See you later", "À plus tard", "Hasta luego", "Bis später"),
    ("Thank you", "Merci", "Gracias", "Danke"),
    ("You're welcome", "De rien", "De nada", "Gern geschehen"),
    ("Yes", "Oui", "Sí", "Ja"),
    ("No", "Non", "No", "Nein"),
    ("Good weekend", "Bon week-end", "Buen fin de semana", "Schönes Wochenende"),
    ("My sister", "Ma sœur", "Mi hermana", "Meine Schwester"),
    ("Three apples", "Trois pommes", "Tres manzanas", "Drei Äpfel"),
    ("A black dog", "Un chien noir", "Un perro negro", "Ein schwarzer Hund"),
    ("Hot coffee", "Café chaud", "Café caliente", "Heißer Kaffee"),
    ("The green door", "La porte verte", "La puerta verde", "Die grüne Tür"),
    ("I am happy", "Je suis content", "Estoy contento", "Ich bin froh"),
    ("Happy New Year", "Bonne année", "Feliz año nuevo", "Frohes neues Jahr"),
    ("Help!", "Au secours !", "¡Ayuda!", "Hilfe!"),
]
WORD_TEMPLATES = [
    'What is the {lang} word for "{en}"?',
    'How do you say "{en}" in {lang}?',
    'Translate "{en}" into {lang}.',
    "Give me the {lang} for '{en}'.",
    '"{en}" in {lang}, please.',
    "What is '{en}' in {lang}?",
    'Translate the word "{en}" to {lang}.',
    'Which {lang} word means "{en}"?',
]

# held-out translation items: never in the tables
_HELD_OUT_TRANSLATIONS = {"cat", "water", "good evening", "i love you"}
assert not {r[0].lower() for r in PHRASES + SHORT_PHRASES + WORDS} & _HELD_OUT_TRANSLATIONS


def gen_translation_all(rng: random.Random) -> list:
    """Every phrase and word in every language (one random template each), shuffled; the caller takes the first N."""
    out = []
    for row in PHRASES + SHORT_PHRASES:
        for li, lang in enumerate(LANGS):
            tmpl, uses_input = pick(rng, TRANS_TEMPLATES)
            en, target = row[0], row[1 + li]
            if uses_input:
                out.append((tmpl.format(lang=lang), en, target))
            else:
                out.append((tmpl.format(lang=lang, en=en), None, target))
    for row in WORDS:
        for li, lang in enumerate(LANGS):
            out.append((pick(rng, WORD_TEMPLATES).format(lang=lang, en=row[0]), None, row[1 + li]))
    rng.shuffle(out)
    return out


# ---------------------------------------------------------------------------------------------
# factual_qa (capitals and science facts hand-written; definitions from WordNet glosses)
# ---------------------------------------------------------------------------------------------

CAPITALS = [
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Spain", "Madrid"),
    ("Portugal", "Lisbon"),
    ("Ireland", "Dublin"),
    ("Norway", "Oslo"),
    ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"),
    ("Denmark", "Copenhagen"),
    ("Poland", "Warsaw"),
    ("Greece", "Athens"),
    ("Austria", "Vienna"),
    ("Hungary", "Budapest"),
    ("the Czech Republic", "Prague"),
    ("the Netherlands", "Amsterdam"),
    ("Belgium", "Brussels"),
    ("Russia", "Moscow"),
    ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"),
    ("Nigeria", "Abuja"),
    ("Ghana", "Accra"),
    ("Ethiopia", "Addis Ababa"),
    ("Morocco", "Rabat"),
    ("China", "Beijing"),
    ("South Korea", "Seoul"),
    ("Thailand", "Bangkok"),
    ("Vietnam", "Hanoi"),
    ("Indonesia", "Jakarta"),
    ("India", "New Delhi"),
    ("Pakistan", "Islamabad"),
    ("Iran", "Tehran"),
    ("Turkey", "Ankara"),
    ("Canada", "Ottawa"),
    ("the United States", "Washington, D.C."),
    ("Mexico", "Mexico City"),
    ("Cuba", "Havana"),
    ("Peru", "Lima"),
    ("Argentina", "Buenos Aires"),
    ("Chile", "Santiago"),
    ("Colombia", "Bogotá"),
    ("Brazil", "Brasília"),
    ("Australia", "Canberra"),
    ("New Zealand", "Wellington"),
    ("the United Kingdom", "London"),
    ("Scotland", "Edinburgh"),
    ("Switzerland", "Bern"),
    ("Iceland", "Reykjavik"),
    ("Saudi Arabia", "Riyadh"),
    ("the Philippines", "Manila"),
    ("Venezuela", "Caracas"),
]
CAPITAL_TEMPLATES = [
    ("What is the capital of {c}?", "full"),
    ("Name the capital city of {c}.", "short"),
    ("What is {c}'s capital?", "full"),
    ("Tell me the capital of {c}.", "full"),
    ("Capital of {c}?", "short"),
    ("What city is the capital of {c}?", "full"),
]
SCIENCE = [
    (["How many legs does a spider have?", "How many legs do spiders have?"], "A spider has eight legs."),
    (["How many legs does an insect have?"], "An insect has six legs."),
    (
        ["What planet is closest to the Sun?", "Which planet is nearest to the Sun?"],
        "Mercury is the planet closest to the Sun.",
    ),
    (
        ["What is the largest planet in our solar system?", "Which planet is the biggest in the solar system?"],
        "Jupiter is the largest planet in our solar system.",
    ),
    (["Which planet is known as the Red Planet?"], "Mars is known as the Red Planet."),
    (["How many continents are there?"], "There are seven continents."),
    (
        ["What is the largest ocean on Earth?", "Which ocean is the biggest?"],
        "The Pacific Ocean is the largest ocean on Earth.",
    ),
    (["What gas do humans need to breathe in to live?"], "Humans need oxygen to live."),
    (
        ["At what temperature does water freeze in Celsius?", "What is the freezing point of water?"],
        "Water freezes at 0 degrees Celsius.",
    ),
    (["At what temperature does water boil at sea level?"], "At sea level, water boils at 100 degrees Celsius."),
    (["Which organ pumps blood around the body?", "What does the heart do?"], "The heart pumps blood around the body."),
    (["What is the closest star to Earth?"], "The Sun is the closest star to Earth."),
    (["How long does it take the Earth to go around the Sun?"], "It takes the Earth about 365 days, or one year."),
    (["What is the chemical symbol for gold?"], "The chemical symbol for gold is Au."),
    (["What is the chemical symbol for iron?"], "The chemical symbol for iron is Fe."),
    (["What is H2O?", "What is the chemical formula H2O?"], "H2O is the chemical formula for water."),
    (["What is the hardest natural material?"], "Diamond is the hardest natural material."),
    (["How many bones are in the adult human body?"], "An adult human body has 206 bones."),
    (["What is the tallest animal in the world?"], "The giraffe is the tallest animal in the world."),
    (["What is the fastest land animal?"], "The cheetah is the fastest land animal."),
    (
        ["What force keeps us on the ground?", "What pulls objects towards the Earth?"],
        "Gravity keeps us on the ground.",
    ),
    (["What do caterpillars turn into?"], "Caterpillars turn into butterflies or moths."),
    (["What is the main gas in the air we breathe?"], "Nitrogen is the main gas in the air, about 78 percent."),
    (["Which organ do we use to think?"], "We use the brain to think."),
    (["What are the three states of matter?"], "The three common states of matter are solid, liquid and gas."),
    (["What is the centre of an atom called?"], "The centre of an atom is called the nucleus."),
    (["How many hours are there in a day?"], "There are 24 hours in a day."),
    (["How many minutes are in an hour?"], "There are 60 minutes in an hour."),
    (["What is the tallest mountain in the world?"], "Mount Everest is the tallest mountain in the world."),
    (["What is the longest river in Africa?"], "The Nile is the longest river in Africa."),
    (["What do we call animals that eat only plants?"], "Animals that eat only plants are called herbivores."),
    (["What do we call animals that eat only meat?"], "Animals that eat only meat are called carnivores."),
    (["What causes day and night on Earth?"], "Day and night are caused by the Earth spinning on its axis."),
    (["What is the name of Earth's natural satellite?"], "Earth's natural satellite is the Moon."),
    (["Which blood cells help fight infection?"], "White blood cells help the body fight infection."),
    (["What part of the plant takes in water from the soil?"], "The roots take in water from the soil."),
    (["What colour do you get if you mix blue and yellow?"], "Mixing blue and yellow gives green."),
    (["What colour do you get if you mix red and white?"], "Mixing red and white gives pink."),
    (["How many sides does a hexagon have?"], "A hexagon has six sides."),
    (["How many sides does a triangle have?"], "A triangle has three sides."),
    (["What is the boiling point of water in Fahrenheit?"], "Water boils at 212 degrees Fahrenheit at sea level."),
    (
        ["What is the largest desert in the world?"],
        "The largest desert is Antarctica; the largest hot desert is the Sahara.",
    ),
    (["Which metal is liquid at room temperature?"], "Mercury is a metal that is liquid at room temperature."),
    (
        ["What do bats use to find their way in the dark?"],
        "Bats use echolocation, listening to the echoes of their own calls.",
    ),
    (["How many teeth does an adult human usually have?"], "An adult human usually has 32 teeth."),
]
# More general knowledge (hand-written): animals, the body, planets, geography, calendar and numbers, materials,
# everyday science. Each answer is a full short sentence that does not repeat the question word for word.
FACTS = [
    # animals
    (["How many legs does a cow have?", "How many legs has a cow got?"], "A cow has four legs."),
    (["How many legs does a bird have?"], "A bird has two legs."),
    (["What do bees make?", "Which sweet food do bees produce?"], "Bees make honey."),
    (["What is a baby dog called?", "What do we call a young dog?"], "A baby dog is called a puppy."),
    (["What is a baby cow called?"], "A young cow is called a calf."),
    (["What is a baby sheep called?"], "A baby sheep is called a lamb."),
    (["What is a young frog called?"], "A young frog is called a tadpole."),
    (["What do fish use to breathe under water?", "How do fish breathe?"], "Fish breathe through their gills."),
    (["Which animal is known as the king of the jungle?"], "The lion is often called the king of the jungle."),
    (["What is the largest animal that has ever lived?"], "The blue whale is the largest animal known to have lived."),
    (
        ["Which bird cannot fly but is the largest bird?", "What is the biggest bird?"],
        "The ostrich is the largest bird, and it cannot fly.",
    ),
    (["What do pandas mainly eat?"], "Pandas eat mostly bamboo."),
    (["Which animal has a long trunk?"], "The elephant has a long trunk."),
    (
        ["Where do penguins mostly live?"],
        "Most penguins live in the southern half of the world, many of them around Antarctica.",
    ),
    (["What do we call an animal that is active at night?"], "An animal that is active at night is nocturnal."),
    (["How many legs does an octopus have?", "How many arms does an octopus have?"], "An octopus has eight arms."),
    (["What kind of animal is a frog?"], "A frog is an amphibian."),
    (["Which animal carries its home on its back?"], "A snail carries its shell, its home, on its back."),
    # the body
    (["How many fingers are there on one hand?"], "One hand has five fingers, counting the thumb."),
    (["Which organs do we use to breathe?", "What organs take air into the body?"], "We breathe with our lungs."),
    (["What part of the body protects the brain?"], "The skull protects the brain."),
    (["What do we use our ears for?"], "We use our ears to hear."),
    (["Which sense do we use our nose for?"], "The nose gives us our sense of smell."),
    (["What is the largest organ of the human body?"], "The skin is the largest organ of the body."),
    (
        ["Where is food digested first after we swallow it?"],
        "Swallowed food goes down to the stomach, where digestion continues.",
    ),
    (["What carries blood from the heart to the rest of the body?"], "Arteries carry blood away from the heart."),
    (
        ["How many senses do humans traditionally have?"],
        "Humans are usually said to have five senses: sight, hearing, smell, taste and touch.",
    ),
    (["What do muscles do?"], "Muscles pull on bones so that the body can move."),
    # space
    (
        ["How many planets are in our solar system?", "How many planets go around the Sun?"],
        "There are eight planets in the solar system.",
    ),
    (["Which planet do we live on?"], "We live on Earth."),
    (["Which planet is famous for its rings?"], "Saturn is famous for its bright rings."),
    (["What is the Sun?", "Is the Sun a planet or a star?"], "The Sun is a star."),
    (["Which is the hottest planet in the solar system?"], "Venus is the hottest planet."),
    (["What goes around the Earth about once a month?"], "The Moon orbits the Earth about once a month."),
    (
        ["Who was the first person to walk on the Moon?"],
        "Neil Armstrong was the first person to walk on the Moon, in 1969.",
    ),
    (["What is a group of stars that forms a pattern called?"], "A pattern of stars is called a constellation."),
    # geography
    (["What is the largest country in the world by area?"], "Russia is the largest country by area."),
    (["What is the largest continent?", "Which continent is the biggest?"], "Asia is the largest continent."),
    (["On which continent is Egypt?", "Which continent is Egypt in?"], "Egypt is in Africa."),
    (["In which country do kangaroos live in the wild?"], "Wild kangaroos live in Australia."),
    (["What is the largest country in South America?"], "Brazil is the largest country in South America."),
    (
        ["Which ocean lies between Europe and North America?"],
        "The Atlantic Ocean lies between Europe and North America.",
    ),
    (["What is the coldest continent?"], "Antarctica is the coldest continent."),
    (["What do we call a piece of land surrounded by water?"], "Land with water all around it is an island."),
    (["Which river flows through London?"], "The Thames flows through London."),
    (["Which river flows through Paris?"], "The Seine flows through Paris."),
    (["In which country are the pyramids of Giza?"], "The pyramids of Giza are in Egypt."),
    (["What language is mainly spoken in Brazil?"], "Most people in Brazil speak Portuguese."),
    (["What language do people speak in Mexico?"], "The main language of Mexico is Spanish."),
    # calendar and numbers
    (["How many months are there in a year?", "How many months does a year have?"], "A year has twelve months."),
    (["Which month comes after March?"], "April comes after March."),
    (["Which month comes before June?"], "May comes before June."),
    (["What is the last month of the year?"], "December is the last month of the year."),
    (["What is the first month of the year?"], "January is the first month of the year."),
    (["How many days are there in a leap year?"], "A leap year has 366 days."),
    (["How many days does June have?"], "June has 30 days."),
    (["How many days are there in January?"], "January has 31 days."),
    (["Which day comes after Tuesday?"], "Wednesday comes after Tuesday."),
    (["Which day comes before Saturday?"], "Friday comes before Saturday."),
    (["How many seconds are in a minute?"], "A minute has 60 seconds."),
    (["How many weeks are there in a year?"], "A year has about 52 weeks."),
    (["How many is a dozen?", "How many things make a dozen?"], "A dozen is twelve."),
    (["How many centimetres are in a metre?"], "A metre is 100 centimetres."),
    (["How many grams are in a kilogram?"], "A kilogram is 1,000 grams."),
    (["How many years are in a century?"], "A century is 100 years."),
    (["How many years are in a decade?"], "A decade is ten years."),
    (["What is the smallest prime number?"], "Two is the smallest prime number."),
    (["Is zero an even number?"], "Yes, zero is even."),
    # materials
    (["What is glass made from?", "Which material is melted to make glass?"], "Glass is made mainly from sand."),
    (["What is paper made from?"], "Most paper is made from wood pulp."),
    (["Which animal gives us wool?"], "Wool comes mainly from sheep."),
    (["What is cheese made from?"], "Cheese is made from milk."),
    (["What do magnets attract?", "Which metal does a magnet pull?"], "Magnets attract iron and steel."),
    (["Which metal is used in most electric wires?"], "Most electric wires are made of copper."),
    (["What is rubber made from?"], "Natural rubber is made from the sap of rubber trees."),
    (["Is wood a good conductor of electricity?"], "No, wood is a poor conductor of electricity."),
    (
        ["Which is heavier, a kilogram of feathers or a kilogram of stones?"],
        "They weigh the same: both are one kilogram.",
    ),
    # everyday science
    (["What do we call frozen water?"], "Frozen water is ice."),
    (["What does a thermometer measure?"], "A thermometer measures temperature."),
    (["What makes a rainbow?"], "A rainbow forms when sunlight is split into colours by raindrops."),
    (
        ["Why is the sky blue on a clear day?"],
        "Air scatters blue sunlight more than other colours, so the sky looks blue.",
    ),
    (["What is steam?"], "Steam is water in the form of a gas."),
    (["What happens to ice when it gets warm?"], "Warm ice melts into liquid water."),
    (["Which travels faster, light or sound?"], "Light travels much faster than sound."),
    (["What do we call the force that slows a sliding object?"], "Friction slows a sliding object."),
    (["What does a compass needle point to?"], "A compass needle points north."),
    (["What do you call water falling from clouds?"], "Water falling from clouds is rain."),
    (["What is the opposite of hot?"], "The opposite of hot is cold."),
    (["What is the opposite of tall?"], "The opposite of tall is short."),
    (["What is the opposite of early?"], "The opposite of early is late."),
]

DEF_NOUNS = [
    "library",
    "kettle",
    "river",
    "teacher",
    "island",
    "volcano",
    "bridge",
    "umbrella",
    "telescope",
    "passport",
    "orchestra",
    "desert",
    "glacier",
    "thermometer",
    "dentist",
    "carpenter",
    "alphabet",
    "pharmacy",
    "harbour",
    "calendar",
    "compass",
    "microscope",
    "canoe",
    "peninsula",
    "fossil",
    "parliament",
    "vaccine",
    "recipe",
    "lighthouse",
    "blizzard",
    "museum",
    "dictionary",
    "satellite",
    "skyscraper",
    "novel",
    "poem",
    "orchard",
    "violin",
    "magnet",
    "journalist",
    "architect",
    "helmet",
    "ladder",
    "sculpture",
    "battery",
    "cathedral",
    "continent",
    "forest",
    "kitchen",
    "mirror",
    "pillow",
    "planet",
    "sandwich",
    "wallet",
]
DEF_VERBS = [
    "whisper",
    "borrow",
    "shiver",
    "chop",
    "rescue",
    "apologise",
    "invent",
    "sneeze",
    "wander",
    "climb",
    "describe",
    "forgive",
    "memorize",
    "float",
]
DEF_ADJS = [
    "brave",
    "honest",
    "ancient",
    "fragile",
    "generous",
    "curious",
    "humid",
    "polite",
    "narrow",
    "shallow",
    "noisy",
    "loyal",
    "rapid",
    "tiny",
    "fierce",
    "gentle",
    "clumsy",
    "empty",
    "ripe",
    "cheerful",
]
# WordNet sense (index into wn.synsets(word, pos)) where the first one is not the everyday meaning
DEF_SENSE = {
    "passport": 1,
    "fossil": 1,
    "battery": 1,
    "helmet": 1,
    "pharmacy": 1,
    "planet": 2,
    "ancient": 1,
    "curious": 1,
    "describe": 1,
    "apologise": 1,
    "cheerful": 1,
    "float": 1,
    "shiver": 1,
}
DEF_NO_ARTICLE = {"desert", "recipe", "satellite", "ladder", "sandwich"}  # glosses that read well without "a"/"an"
DEF_TEMPLATES = [
    'What does "{w}" mean?',
    'Define the word "{w}".',
    'Give a short definition of "{w}".',
    'What is the meaning of the word "{w}"?',
    'Explain what "{w}" means in one sentence.',
]


def _gloss(synset) -> str:
    g = synset.definition().split(";")[0].strip()
    g = re.sub(r"\s*\([^)]*\)", "", g).strip().rstrip(".")
    g = re.sub(r",? etc$", "", g)
    return g[3:] if g.startswith("to ") else g


def build_definitions(wn) -> list:
    """(word, pos, response) for the hand-written word lists, from their first WordNet sense."""
    out = []
    for pos, words in (("n", DEF_NOUNS), ("v", DEF_VERBS), ("a", DEF_ADJS)):
        for w in words:
            syns = wn.synsets(w, pos)
            if not syns:
                continue
            g = _gloss(syns[DEF_SENSE.get(w, 0)])
            if pos == "n":
                if not re.match(r"(a|an|the|any|one|someone)\b", g) and w not in DEF_NO_ARTICLE:
                    g = f"{article(g)} {g}"
                resp = f"{article(w).capitalize()} {w} is {g}."
            elif pos == "v":
                resp = f"To {w} means to {g}."
            else:
                resp = f'"{cap(w)}" means {g}.'
            out.append((w, pos, resp))
    return out


def gen_factual_qa(rng: random.Random, ctx) -> tuple[str, str | None, str]:
    r = rng.random()
    if r < 0.38:  # general knowledge
        qs, a = pick(rng, FACTS)
        return pick(rng, qs), None, a
    r = rng.random()
    if r < 0.36:
        c, city = pick(rng, CAPITALS)
        t, style = pick(rng, CAPITAL_TEMPLATES)
        return t.format(c=c), None, (f"The capital of {c} is {city}." if style == "full" else f"{city}.")
    if r < 0.68:
        w, pos, resp = pick(rng, ctx["definitions"])
        t = pick(rng, DEF_TEMPLATES + (["What is {a} {w}?"] if pos == "n" else []))
        return t.format(w=w, a=article(w)), None, resp
    qs, a = pick(rng, SCIENCE)
    return pick(rng, qs), None, a


# ---------------------------------------------------------------------------------------------
# WordNet, evaluation texts, main
# ---------------------------------------------------------------------------------------------


def open_wordnet(wordnet_dir: str, tmp: str):
    """NLTK reader over Debian's wordnet-base (which lacks NLTK's ``lexnames`` file)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_general_verbs import LEXNAMES

    if not Path(wordnet_dir, "data.noun").is_file():
        sys.exit(f"WordNet not found in {wordnet_dir}: apt-get install wordnet-base")
    root = Path(tmp) / "corpora" / "wordnet"
    shutil.copytree(wordnet_dir, root, ignore=shutil.ignore_patterns("bin", "*.gz", "pixmaps", "wnres"))
    if not (root / "lexnames").exists():
        (root / "lexnames").write_text("".join(f"{i:02d}\t{n}\t{c}\n" for i, (n, c) in enumerate(LEXNAMES)))
    nltk.data.path.append(tmp)

    class _Reader(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            return None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _Reader(str(root), None)


SUBJECTS = {"he", "she", "they", "we", "i", "it", "you"}


def example_sentences(wn) -> list[str]:
    """WordNet example sentences of 6-14 words, plain letters, starting with a subject pronoun (so that they
    are whole clauses, not fragments), all words common (wordfreq zipf >= 3.4)."""
    from wordfreq import zipf_frequency

    seen, out = set(), []
    for pos in ("n", "v", "a", "r"):
        for s in wn.all_synsets(pos):
            for ex in s.examples():
                ex = ex.strip()
                if ex in seen or not re.fullmatch(r"[A-Za-z][A-Za-z ,']*[a-z]", ex):
                    continue
                toks = ex.replace(",", " ").split()
                if not 6 <= len(toks) <= 14 or "''" in ex or " '" in ex or toks[0].lower() not in SUBJECTS:
                    continue
                if all(zipf_frequency(t, "en") >= 3.4 for t in toks):
                    seen.add(ex)
                    out.append(ex)
    return sorted(out)


def find_paper_tsv(arg: str | None) -> Path | None:
    if arg:
        return Path(arg)
    env = os.environ.get("TUNESHIFT_PAPER_DATA", "").strip()
    if env:
        return Path(env).expanduser() / "datasets" / "FinalDataset.tsv"
    for p in (
        REPO.parent / "shared/paper/datasets/FinalDataset.tsv",
        Path("/work/shared/paper/datasets/FinalDataset.tsv"),
    ):
        if p.is_file():
            return p
    return None


def evaluation_texts(paper_tsv: Path | None) -> dict[str, list[str]]:
    texts = {"demo_prompts": [], "following_eval": [], "paper_tsv": []}
    for line in (REPO / "tuneshift/data/bundled/demo_prompts.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            texts["demo_prompts"].append(json.loads(line)["prompt"])
    for line in (REPO / "tuneshift/data/bundled/following_eval.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            texts["following_eval"].append(user_text(rec["instruction"], rec.get("input")))
    if paper_tsv is not None:
        from tuneshift.data.prompts import read_prompts  # the project's reader of FinalDataset.tsv (/n -> newline)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            texts["paper_tsv"] = [r.prompt for r in read_prompts(paper_tsv).records]
    return texts


# records per task where it differs from --per-task: the task types the tuned model found hardest get more
TASK_COUNTS = {"rewriting": 220, "summarising": 220, "math": 220, "translation": 220, "factual_qa": 220}

GENERATORS = {
    "open_writing": gen_open_writing,
    "rewriting": gen_rewriting,
    "summarising": gen_summarising,
    "classification": gen_classification,
    "extraction": gen_extraction,
    "brainstorming": gen_brainstorming,
    "math": gen_math,
    "coding": gen_coding,
    "factual_qa": gen_factual_qa,
}


def record_text(ins: str, inp: str | None, resp: str) -> str:
    return f"{user_text(ins, inp)}\n\n{resp}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "data/tuning/corpus.jsonl"))
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument(
        "--per-task", type=int, default=140, help="records generated per task before filtering (default 140)"
    )
    ap.add_argument(
        "--task-count",
        action="append",
        default=[],
        metavar="TASK=N",
        help="records for one task, overriding --per-task (repeatable; defaults: "
        + ", ".join(f"{t}={n}" for t, n in TASK_COUNTS.items())
        + ")",
    )
    ap.add_argument(
        "--paper-tsv", default=None, help="the paper's FinalDataset.tsv (default: looked for next to the repo)"
    )
    ap.add_argument("--wordnet", default=WORDNET_DIR)
    ap.add_argument("--show-overlaps", action="store_true", help="print every record dropped for an 8-gram overlap")
    args = ap.parse_args()

    counts = {t: TASK_COUNTS.get(t, args.per_task) for t in TASKS}
    for spec in args.task_count:
        task, _, n = spec.partition("=")
        if task not in counts or not n.isdigit():
            sys.exit(f"--task-count {spec!r}: expected TASK=N with TASK one of {', '.join(TASKS)}")
        counts[task] = int(n)

    rng = random.Random(args.seed)
    paper = find_paper_tsv(args.paper_tsv)
    if args.paper_tsv and not paper.is_file():
        sys.exit(f"--paper-tsv {paper} does not exist")
    ev = evaluation_texts(paper)
    eval_grams: set = set()
    for group in ev.values():
        for t in group:
            eval_grams |= word_ngrams(t)
    print(
        f"evaluation texts: demo_prompts={len(ev['demo_prompts'])}, following_eval={len(ev['following_eval'])}, "
        f"paper_tsv={len(ev['paper_tsv'])} ({paper if paper else 'not found'}); {len(eval_grams)} distinct 8-grams"
    )

    with tempfile.TemporaryDirectory() as tmp:
        wn = open_wordnet(args.wordnet, tmp)
        examples = example_sentences(wn)
        definitions = build_definitions(wn)

        def is_word(t: str) -> bool:
            return bool(wn.synsets(t.lower())) or t.lower() in COMMON_FUNCTION_WORDS

        ctx = {
            "examples": examples,
            "definitions": definitions,
            "is_word": is_word,
            "code_specs": _all_code_specs(),
            "swap_cands": swap_candidates(HAND_SENTENCES, [_sentence(e) for e in examples]),
        }
        print(f"WordNet: {len(examples)} usable example sentences, {len(definitions)} definitions")

        records, stats = [], {}
        for task in TASKS:
            seen, kept, dups, overlap = set(), [], 0, []
            if task == "translation":
                raw = gen_translation_all(rng)
                attempts = iter(raw)
            else:
                attempts = (GENERATORS[task](rng, ctx) for _ in range(counts[task] * 20))
            for item in attempts:  # generate until the task's count is reached after filtering
                if len(kept) >= counts[task]:
                    break
                if item is None:
                    continue
                if item in seen:
                    dups += 1
                    continue
                seen.add(item)
                if word_ngrams(record_text(*item)) & eval_grams:
                    overlap.append(item)
                    continue
                kept.append(item)
            stats[task] = (len(kept) + len(overlap), dups, len(overlap), len(kept))
            if args.show_overlaps:
                for item in overlap:
                    print(f"  overlap dropped ({task}): {item}")
            for i, (ins, inp, resp) in enumerate(kept, 1):
                rec = {"id": f"{task}_{i:04d}", "task": task, "instruction": ins}
                if inp:
                    rec["input"] = inp
                rec["response"] = resp
                records.append(rec)

    rng.shuffle(records)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"{'task':<16}{'generated':>10}{'duplicates':>12}{'overlap':>9}{'written':>9}")
    for task, (g, d, o, w) in stats.items():
        print(f"{task:<16}{g:>10}{d:>12}{o:>9}{w:>9}")
    tot = [sum(s[i] for s in stats.values()) for i in range(4)]
    print(f"{'total':<16}{tot[0]:>10}{tot[1]:>12}{tot[2]:>9}{tot[3]:>9}")
    print(f"wrote {len(records)} records to {out}")


if __name__ == "__main__":
    main()
